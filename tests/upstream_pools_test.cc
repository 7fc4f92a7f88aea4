// Black-box: routes with several upstreams (docs/configuration.md,
// "Upstream pools"): weighted round robin over three, a dead upstream
// costing new clients nothing, state kept across SIGHUP.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// One echoed round trip through `port`.
bool Echoes(int port) {
  int fd = ConnectTo(port, false, absl::Seconds(5));
  if (fd < 0) return false;
  bool ok = SendAll(fd, "ping") && RecvExactly(fd, 4) == "ping";
  close(fd);
  return ok;
}

std::string PoolConfig(int listen, const std::vector<std::pair<int, int>>& upstreams,
                       const std::string& extra = "") {
  std::string list;
  for (const auto& [port, weight] : upstreams) {
    absl::StrAppend(&list, list.empty() ? "" : ", ", R"({"address": "127.0.0.1:)", port,
                    R"(", "weight": )", weight, "}");
  }
  return absl::StrCat(R"({"routes": [{"name": "pool", "listen": "127.0.0.1:)", listen,
                      R"(", "upstreams": [)", list, "]", extra, "}]}");
}

nlohmann::json PoolStatus(Gateway& gw) {
  nlohmann::json status =
      nlohmann::json::parse(HttpGet(gw.AdminAddress(), "/status").body, nullptr, false);
  return status["routes"][0]["upstreams"];
}

class UpstreamPoolsTest : public ::testing::Test {
 protected:
  void SetUp() override { config_ = FreshTempDir(TestName()) + "/gateway.json"; }
  std::unique_ptr<Gateway> Start(const std::string& config,
                                 std::vector<std::string> flags = {}) {
    std::ofstream(config_) << config;
    flags.push_back("--config=" + config_);
    auto gw = std::make_unique<Gateway>(TestName(), Gateway::Options{flags});
    EXPECT_TRUE(gw->WaitReady()) << gw->Log();
    return gw;
  }
  std::string config_;
};

TEST_F(UpstreamPoolsTest, WeightedRoundRobinSpreadsThreeUpstreamsByWeight) {
  EchoServer a, b, c;
  int port = FreePort();
  auto gw = Start(PoolConfig(port, {{a.port(), 2}, {b.port(), 1}, {c.port(), 1}}));
  int failed = 0;
  for (int i = 0; i < 3000; ++i) failed += !Echoes(port);
  EXPECT_EQ(failed, 0);
  // Within ±2% of 1500 / 750 / 750 (the pool is shared by every worker, so
  // the smooth round robin is exact).
  EXPECT_NEAR(a.accepted(), 1500, 30);
  EXPECT_NEAR(b.accepted(), 750, 15);
  EXPECT_NEAR(c.accepted(), 750, 15);
  nlohmann::json pool = PoolStatus(*gw);
  ASSERT_EQ(pool.size(), 3u) << pool.dump();
  EXPECT_EQ(pool[0]["weight"], 2);
  EXPECT_EQ(pool[0]["connections_total"], a.accepted());
  std::printf("3000 connections over weights 2/1/1: %d / %d / %d\n", a.accepted(), b.accepted(),
              c.accepted());
}

TEST_F(UpstreamPoolsTest, ADeadUpstreamCostsNewClientsNothing) {
  EchoServer a, c;
  auto b = std::make_unique<EchoServer>();
  int port = FreePort();
  auto gw = Start(PoolConfig(port, {{a.port(), 1}, {b->port(), 1}, {c.port(), 1}}));
  ASSERT_TRUE(Echoes(port));
  int dead = b->port();
  b.reset();  // refuses from now on
  int failed = 0;
  for (int i = 0; i < 300; ++i) failed += !Echoes(port);
  EXPECT_EQ(failed, 0) << "clients failed although two upstreams are up";
  nlohmann::json pool = PoolStatus(*gw);
  EXPECT_EQ(pool[1]["address"], absl::StrCat("127.0.0.1:", dead));
  EXPECT_EQ(pool[1]["up"], false) << pool.dump();
  EXPECT_GE(pool[1]["connect_errors"].get<int>(), 3);
  std::string metrics = HttpGet(gw->AdminAddress(), "/metrics").body;
  EXPECT_TRUE(absl::StrContains(
      metrics, absl::StrCat("gateway_upstream_up{route=\"pool\",upstream=\"127.0.0.1:", dead,
                            "\"} 0")))
      << metrics;
  EXPECT_FALSE(absl::StrContains(metrics, "gateway_upstream_retries_total{route=\"pool\"} 0"));
}

TEST_F(UpstreamPoolsTest, NoUpstreamUpClosesNewClientsAtOnceAndCountsIt) {
  auto a = std::make_unique<EchoServer>();
  auto b = std::make_unique<EchoServer>();
  int port = FreePort();
  auto gw = Start(PoolConfig(port, {{a->port(), 1}, {b->port(), 1}}));
  a.reset();
  b.reset();
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(Echoes(port));
  std::string metrics = HttpGet(gw->AdminAddress(), "/metrics").body;
  EXPECT_FALSE(absl::StrContains(metrics, "gateway_no_upstream_total{route=\"pool\"} 0"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(gw->Log(), "is down for 10s")) << gw->Log();
}

TEST_F(UpstreamPoolsTest, StateOfUpstreamsThatStaySurvivesSighup) {
  EchoServer a, b, c;
  int port = FreePort();
  auto gw = Start(PoolConfig(port, {{a.port(), 1}, {b.port(), 1}}));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Echoes(port));
  std::ofstream(config_) << PoolConfig(port, {{a.port(), 1}, {c.port(), 1}},
                                       R"(, "balance": "least_conn")");
  SignalFromSibling(gw->pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw->Log(), "SIGHUP: 1 route(s) in force"); },
                      absl::Seconds(10)))
      << gw->Log();
  nlohmann::json pool = PoolStatus(*gw);
  ASSERT_EQ(pool.size(), 2u) << pool.dump();
  EXPECT_EQ(pool[0]["connections_total"], 10) << "the kept upstream lost its counters";
  EXPECT_EQ(pool[1]["connections_total"], 0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Echoes(port));
  EXPECT_GT(c.accepted(), 0);
}

TEST_F(UpstreamPoolsTest, BadPoolConfigsAreOneLineAndExit78) {
  struct Case {
    std::string config;
    std::string error;
  };
  int port = FreePort();
  const Case cases[] = {
      {absl::StrCat(R"({"routes": [{"listen": "127.0.0.1:)", port,
                    R"(", "upstream": "127.0.0.1:9", "upstreams": ["127.0.0.1:10"]}]})"),
       "\"upstream\" and \"upstreams\" together"},
      {PoolConfig(port, {{9, 0}}), "\"weight\" must be an integer from 1 to 256"},
      {PoolConfig(port, {{9, 1}, {9, 1}}), "127.0.0.1:9 is listed twice"},
      {PoolConfig(port, {{9, 1}}, R"(, "balance": "random")"),
       "\"balance\" must be round_robin, least_conn or hash"},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::ofstream(config_) << c.config;
    Gateway gw(absl::StrCat(TestName(), ++n), Gateway::Options{{"--config=" + config_}});
    ExitStatus exit = gw.Wait();
    EXPECT_TRUE(exit.exited && exit.code == 78) << exit.Describe() << gw.Log();
    EXPECT_TRUE(absl::StrContains(gw.Log(), c.error)) << gw.Log();
  }
}


// max_connections holds across workers: the count is shared.
TEST_F(UpstreamPoolsTest, MaxConnectionsRefusesBeyondTheLimitAndCountsIt) {
  EchoServer a;
  int port = FreePort();
  auto gw = Start(absl::StrCat(R"({"routes": [{"name": "pool", "listen": "127.0.0.1:)", port,
                               R"(", "upstream": "127.0.0.1:)", a.port(),
                               R"(", "max_connections": 5}]})"),
                  {"--workers=4"});
  std::vector<int> held;
  int refused = 0;
  for (int i = 0; i < 12; ++i) {
    int fd = ConnectTo(port);
    ASSERT_GE(fd, 0);
    if (SendAll(fd, "hi") && RecvExactly(fd, 2) == "hi") {
      held.push_back(fd);
    } else {
      ++refused;
      close(fd);
    }
  }
  EXPECT_EQ(held.size(), 5u);
  EXPECT_EQ(refused, 7);
  std::string metrics = HttpGet(gw->AdminAddress(), "/metrics").body;
  EXPECT_TRUE(absl::StrContains(metrics, "gateway_over_limit_total{route=\"pool\"} 7")) << metrics;
  close(held.back());
  held.pop_back();
  ASSERT_TRUE(WaitFor([&] { return Echoes(port); }, absl::Seconds(5))) << "a freed slot is not reused";
  for (int fd : held) close(fd);
}

TEST_F(UpstreamPoolsTest, IdleTimeoutClosesQuietConnectionsOnly) {
  EchoServer a;
  int port = FreePort();
  auto gw = Start(absl::StrCat(R"({"routes": [{"name": "pool", "listen": "127.0.0.1:)", port,
                               R"(", "upstream": "127.0.0.1:)", a.port(),
                               R"(", "idle_timeout": "2s"}]})"));
  int quiet = ConnectTo(port);
  int busy = ConnectTo(port);
  ASSERT_GE(quiet, 0);
  ASSERT_GE(busy, 0);
  ASSERT_TRUE(SendAll(quiet, "q") && RecvExactly(quiet, 1) == "q");
  absl::Time start = absl::Now();
  // The busy one moves a byte every 500 ms for 4 s: never idle for 2 s.
  for (int i = 0; i < 8; ++i) {
    absl::SleepFor(absl::Milliseconds(500));
    ASSERT_TRUE(SendAll(busy, "b") && RecvExactly(busy, 1) == "b") << "busy closed after " << i;
  }
  bool eof = false;
  RecvUntilEof(quiet, &eof);
  EXPECT_TRUE(eof) << "the quiet connection is still open";
  EXPECT_GE(absl::Now() - start, absl::Seconds(2));
  std::string metrics = HttpGet(gw->AdminAddress(), "/metrics").body;
  EXPECT_TRUE(absl::StrContains(metrics, "gateway_idle_closed_total{route=\"pool\"} 1")) << metrics;
  close(quiet);
  close(busy);
}

}  // namespace
}  // namespace gateway::testing
