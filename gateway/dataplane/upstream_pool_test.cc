// Balancing and ejection of UpstreamPool, on fabricated routes.
#include "gateway/dataplane/upstream_pool.h"

#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

Route PoolRoute(const std::vector<std::pair<int, int>>& ports_and_weights,
                Balance balance = Balance::kRoundRobin) {
  Route route;
  route.name = "pool";
  route.listen = *SocketAddress::Parse("127.0.0.1:1");
  for (const auto& [port, weight] : ports_and_weights) {
    UpstreamSpec spec;
    spec.address = *SocketAddress::Parse(absl::StrCat("127.0.0.1:", port));
    spec.weight = weight;
    route.upstreams.push_back(spec);
  }
  route.upstream = route.upstreams[0].address;
  route.balance = balance;
  return route;
}

SocketAddress Client(int n) {
  return *SocketAddress::Parse(absl::StrCat("10.", (n >> 16) & 255, ".", (n >> 8) & 255, ".",
                                            n & 255, ":4000"));
}

std::map<std::string, int> Spread(UpstreamPool& pool, int picks) {
  std::map<std::string, int> count;
  for (int i = 0; i < picks; ++i) {
    UpstreamState* u = pool.Pick(Client(i));
    ++count[u->name];
    pool.Release(u);
  }
  return count;
}

TEST(UpstreamPoolTest, SmoothWeightedRoundRobinGivesEachItsWeightInterleaved) {
  UpstreamPool pool(PoolRoute({{10, 5}, {11, 1}, {12, 1}}));
  std::map<std::string, int> count = Spread(pool, 7000);
  EXPECT_EQ(count["127.0.0.1:10"], 5000);
  EXPECT_EQ(count["127.0.0.1:11"], 1000);
  EXPECT_EQ(count["127.0.0.1:12"], 1000);
  // Smooth: never the heavy one five times in a row (nginx's a a b a c a a).
  std::string order;
  for (int i = 0; i < 7; ++i) {
    UpstreamState* u = pool.Pick(Client(i));
    order += u->name.back();
    pool.Release(u);
  }
  EXPECT_EQ(order.find("00000"), std::string::npos) << order;
}

TEST(UpstreamPoolTest, LeastConnFollowsActiveConnections) {
  UpstreamPool pool(PoolRoute({{10, 1}, {11, 1}}, Balance::kLeastConn));
  UpstreamState* busy = pool.Pick(Client(1));
  std::vector<UpstreamState*> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool.Pick(Client(1)));
  // The first went to one, the next to the other, then they alternate.
  int on_busy = 0;
  for (UpstreamState* u : held) on_busy += u == busy;
  EXPECT_EQ(on_busy, 2);  // 3 and 3 in all
  for (int i = 0; i < 4; ++i) {
    UpstreamState* other = held[0] == busy ? held[1] : held[0];
    pool.Release(other);  // the other side empties: it gets the next ones
  }
  EXPECT_NE(pool.Pick(Client(2)), busy);
}

TEST(UpstreamPoolTest, HashIsStableAndMovesAboutOneNthOnAChange) {
  Route four = PoolRoute({{10, 1}, {11, 1}, {12, 1}, {13, 1}}, Balance::kHash);
  Route five = PoolRoute({{10, 1}, {11, 1}, {12, 1}, {13, 1}, {14, 1}}, Balance::kHash);
  UpstreamPool pool(four);
  constexpr int kClients = 20000;
  std::vector<std::string> before;
  for (int i = 0; i < kClients; ++i) {
    UpstreamState* u = pool.Pick(Client(i));
    before.push_back(u->name);
    pool.Release(u);
    EXPECT_EQ(pool.Pick(Client(i)), u);  // the same client, the same upstream
    pool.Release(u);
  }
  pool.Update(five);
  int moved = 0, moved_elsewhere = 0;
  for (int i = 0; i < kClients; ++i) {
    UpstreamState* u = pool.Pick(Client(i));
    if (u->name != before[static_cast<size_t>(i)]) {
      ++moved;
      if (u->name != "127.0.0.1:14") ++moved_elsewhere;
    }
    pool.Release(u);
  }
  // Ideal: 1/5 move, all of them to the new upstream.
  EXPECT_NEAR(moved / static_cast<double>(kClients), 0.2, 0.02) << moved;
  EXPECT_EQ(moved_elsewhere, 0);
}

TEST(UpstreamPoolTest, BackupsServeOnlyWhileNoPrimaryIsUp) {
  Route route = PoolRoute({{10, 1}, {11, 1}});
  route.upstreams[1].backup = true;
  UpstreamPool pool(route);
  for (int i = 0; i < 10; ++i) {
    UpstreamState* u = pool.Pick(Client(i));
    EXPECT_EQ(u->name, "127.0.0.1:10");
    pool.Release(u);
  }
  UpstreamState* primary = pool.Pick(Client(0));
  pool.Release(primary);
  for (int i = 0; i < kEjectAfterFailures; ++i) pool.ConnectFailed(primary, "refused");
  UpstreamState* u = pool.Pick(Client(0));
  EXPECT_EQ(u->name, "127.0.0.1:11");
  pool.Release(u);
  pool.Connected(primary);  // e.g. a retry after the ejection succeeded
  u = pool.Pick(Client(0));
  EXPECT_EQ(u->name, "127.0.0.1:10");
  pool.Release(u);
}

TEST(UpstreamPoolTest, ARetryNeverPicksTheFailedUpstreamAndAllDownMeansNone) {
  UpstreamPool pool(PoolRoute({{10, 1}, {11, 1}}));
  UpstreamState* first = pool.Pick(Client(0));
  for (int i = 0; i < 50; ++i) {
    UpstreamState* u = pool.Pick(Client(i), first);
    EXPECT_NE(u, first);
    pool.Release(u);
  }
  UpstreamState* second = pool.Pick(Client(0), first);
  for (UpstreamState* u : {first, second}) {
    for (int i = 0; i < kEjectAfterFailures; ++i) pool.ConnectFailed(u, "refused");
  }
  EXPECT_EQ(pool.Pick(Client(0)), nullptr);
  nlohmann::json status = pool.StatusJson();
  EXPECT_EQ(status[0]["up"], false);
  EXPECT_NE(status[0]["last_change"].get<std::string>().find("3 connect failures in a row"),
            std::string::npos);
}

TEST(UpstreamPoolTest, APoolOfOneIsNeverEjectedAndStateSurvivesAnUpdate) {
  Route one = PoolRoute({{10, 1}});
  UpstreamPool pool(one);
  UpstreamState* u = pool.Pick(Client(0));
  for (int i = 0; i < 10; ++i) pool.ConnectFailed(u, "refused");
  EXPECT_EQ(pool.Pick(Client(0)), u);
  pool.Update(PoolRoute({{10, 1}, {11, 1}}));
  EXPECT_EQ(u->connect_errors.load(), 10);  // the address stayed: its counters too
  EXPECT_EQ(u->active.load(), 2);
}

Route CheckedRoute(int rise, int fall) {
  Route route = PoolRoute({{1, 1}, {2, 1}});
  route.health_check.enabled = true;
  route.health_check.rise = rise;
  route.health_check.fall = fall;
  return route;
}

UpstreamState* Member(UpstreamPool& pool, int port) {
  for (int i = 0; i < 4; ++i) {
    UpstreamState* u = pool.Pick(Client(i));
    pool.Release(u);
    if (u->address.port() == port) return u;
  }
  return nullptr;
}

TEST(UpstreamPoolTest, ChecksApplyFallAndRise) {
  UpstreamPool pool(CheckedRoute(2, 3));
  UpstreamState* b = Member(pool, 2);
  ASSERT_NE(b, nullptr);
  // CheckDone says when the upstream is changing state (its next check
  // comes after fast_interval).
  EXPECT_FALSE(pool.CheckDone(b, absl::Milliseconds(1), ""));  // up, and has succeeded once
  EXPECT_TRUE(pool.CheckDone(b, absl::Milliseconds(1), "refused")) << "falling";
  EXPECT_TRUE(pool.CheckDone(b, absl::Milliseconds(1), "refused")) << "falling";
  EXPECT_FALSE(b->checked_down.load()) << "down before fall (3) failures";
  EXPECT_FALSE(pool.CheckDone(b, absl::Milliseconds(1), "refused")) << "down: no longer changing";
  EXPECT_TRUE(b->checked_down.load());
  EXPECT_EQ(Spread(pool, 10).count("127.0.0.1:2"), 0u) << "a checked-down upstream was picked";
  EXPECT_FALSE(pool.CheckDone(b, absl::Milliseconds(1), "refused")) << "down and failing: steady";
  EXPECT_TRUE(pool.CheckDone(b, absl::Milliseconds(1), "")) << "rising";
  EXPECT_TRUE(b->checked_down.load()) << "up before rise (2) successes";
  EXPECT_FALSE(pool.CheckDone(b, absl::Milliseconds(1), ""));
  EXPECT_FALSE(b->checked_down.load());
  EXPECT_EQ(b->last_change, "up: 2 check(s) in a row succeeded");
}

TEST(UpstreamPoolTest, TheFirstFailedCheckTakesANewUpstreamDown) {
  UpstreamPool pool(CheckedRoute(2, 3));
  UpstreamState* b = Member(pool, 2);
  pool.CheckDone(b, absl::Milliseconds(1), "refused");
  EXPECT_TRUE(b->checked_down.load());
  EXPECT_EQ(b->last_change, "down: its first check failed: refused");
}

TEST(UpstreamPoolTest, PassiveEjectionWithChecksWaitsForRiseChecks) {
  UpstreamPool pool(CheckedRoute(2, 3));
  UpstreamState* b = Member(pool, 2);
  for (int i = 0; i < kEjectAfterFailures; ++i) pool.ConnectFailed(b, "refused");
  EXPECT_TRUE(b->checked_down.load());
  pool.Connected(b);  // a connect that succeeds does not bring it back: the checks do
  EXPECT_TRUE(b->checked_down.load());
  pool.CheckDone(b, absl::Milliseconds(1), "");
  pool.CheckDone(b, absl::Milliseconds(1), "");
  EXPECT_FALSE(b->checked_down.load());
}

TEST(UpstreamPoolTest, AdminStateTakesNewConnectionsAwayAndIsInherited) {
  UpstreamPool pool(PoolRoute({{1, 1}, {2, 1}}));
  EXPECT_TRUE(pool.SetAdmin("127.0.0.1:2", AdminState::kDrain, nullptr));
  EXPECT_FALSE(pool.SetAdmin("127.0.0.1:3", AdminState::kDrain, nullptr));
  std::map<std::string, int> spread = Spread(pool, 10);
  EXPECT_EQ(spread["127.0.0.1:1"], 10);
  EXPECT_TRUE(pool.AnyUp());
  EXPECT_TRUE(pool.SetAdmin("127.0.0.1:1", AdminState::kDisabled, nullptr));
  EXPECT_FALSE(pool.AnyUp());
  EXPECT_EQ(pool.Pick(Client(0)), nullptr);
  UpstreamPool successor(PoolRoute({{1, 1}, {2, 1}, {3, 1}}));
  successor.Inherit(pool.ExportState());
  EXPECT_EQ(Spread(successor, 10)["127.0.0.1:3"], 10) << "drained/disabled state was not inherited";
  successor.Inherit(nlohmann::json::parse(R"({"127.0.0.1:3": {"admin": 7}, "x": 1})"));  // ignored
}

TEST(UpstreamPoolTest, DisabledUpstreamsAreNotChecked) {
  UpstreamPool pool(CheckedRoute(1, 1));
  EXPECT_EQ(pool.CheckTargets().size(), 2u);
  pool.SetAdmin("127.0.0.1:1", AdminState::kDisabled, nullptr);
  ASSERT_EQ(pool.CheckTargets().size(), 1u);
  EXPECT_EQ(pool.CheckTargets()[0].upstream->address.port(), 2);
  pool.SetAdmin("127.0.0.1:2", AdminState::kDrain, nullptr);
  EXPECT_EQ(pool.CheckTargets().size(), 1u) << "a draining upstream is still checked";
}

}  // namespace
}  // namespace gateway
