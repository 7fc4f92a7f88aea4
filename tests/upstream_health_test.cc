// Black-box: active health checks, runtime admin state and the balancing
// algorithms on the real binary (docs/configuration.md, "Health checks"
// and "Upstream pools"; gatewayctl upstream). Upstreams are real sockets
// on loopback: echo servers that greet with their name, and a tiny HTTP
// server whose status the test flips.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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

// Connects to 127.0.0.1:`port` from `source` (any 127/8 address), reads
// the upstream's one-byte greeting, echoes once; the greeting, or "" on
// failure. With `keep`, the socket is returned there open.
std::string Visit(int port, const std::string& source = "127.0.0.1", int* keep = nullptr) {
  int fd = ConnectFrom(source, port);
  std::string greeting;
  if (fd >= 0) {
    greeting = RecvExactly(fd, 1);
    if (greeting.size() != 1 || !SendAll(fd, "x") || RecvExactly(fd, 1) != "x") greeting.clear();
  }
  if (keep != nullptr && !greeting.empty()) {
    *keep = fd;
  } else if (fd >= 0) {
    close(fd);
  }
  return greeting;
}

// An HTTP/1.0 server answering every request with `status` (settable).
class HttpServer {
 public:
  HttpServer() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 64);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        pollfd p = {fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        timeval tv = {1, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string request;
        char buffer[1024];
        while (request.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = read(c, buffer, sizeof buffer);
          if (n <= 0) break;
          request.append(buffer, static_cast<size_t>(n));
        }
        if (absl::StartsWith(request, "GET /healthz HTTP/1.0\r\n")) requests_.fetch_add(1);
        SendAll(c, absl::StrCat("HTTP/1.0 ", status_.load(), " X\r\nContent-Length: 0\r\n\r\n"));
        close(c);
      }
    });
  }
  ~HttpServer() {
    stop_.store(true);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  void SetStatus(int status) { status_.store(status); }
  int requests() const { return requests_.load(); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> status_{200};
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string Upstreams(const std::vector<int>& ports) {
  std::string list;
  for (int port : ports) absl::StrAppend(&list, list.empty() ? "" : ", ", "\"127.0.0.1:", port, "\"");
  return list;
}

std::string Config(int listen, const std::vector<int>& ports, const std::string& extra = "") {
  return absl::StrCat(R"({"routes": [{"name": "pool", "listen": "127.0.0.1:)", listen,
                      R"(", "upstreams": [)", Upstreams(ports), "]", extra, "}]}");
}

constexpr char kFastChecks[] =
    R"(, "health_check": {"interval": "200ms", "timeout": "150ms", "rise": 2, "fall": 2})";

class UpstreamHealthTest : public ::testing::Test {
 protected:
  void SetUp() override { config_ = FreshTempDir(TestName()) + "/gateway.json"; }
  std::unique_ptr<Gateway> Start(const std::string& config, std::vector<std::string> flags = {}) {
    std::ofstream(config_) << config;
    flags.push_back("--config=" + config_);
    auto gw = std::make_unique<Gateway>(TestName(), Gateway::Options{flags});
    EXPECT_TRUE(gw->WaitReady()) << gw->Log();
    return gw;
  }
  nlohmann::json Pool(const std::string& admin) {
    nlohmann::json status = nlohmann::json::parse(HttpGet(admin, "/status").body, nullptr, false);
    return status.is_object() ? status["routes"][0]["upstreams"] : nlohmann::json();
  }
  // The member of the pool at `port`.
  nlohmann::json Member(const std::string& admin, int port) {
    for (const auto& u : Pool(admin)) {
      if (u["address"] == absl::StrCat("127.0.0.1:", port)) return u;
    }
    return nullptr;
  }
  RunResult Ctl(const Gateway& gw, std::vector<std::string> args) {
    args.push_back("--state_dir=" + gw.state_dir());
    return Gatewayctl(args);
  }
  std::string config_;
};

// The issue's test: 200 new connections a second over three upstreams; one
// is killed, then restarted on its port. No new client connection fails
// (retries and the checks keep it away), it is marked down within fall ×
// interval of the kill, and up again after rise checks.
TEST_F(UpstreamHealthTest, AKilledUpstreamUnderLoadCostsNoNewConnectionAndComesBack) {
  EchoServer a(false, "a"), c(false, "c");
  auto b = std::make_unique<EchoServer>(false, "b", FreePortOutsideEphemeralRange());
  const int b_port = b->port();
  int port = FreePort();
  auto gw = Start(Config(port, {a.port(), b_port, c.port()}, kFastChecks));
  const std::string admin = gw->AdminAddress();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::map<char, std::atomic<int>> by_upstream;
  for (char name : {'a', 'b', 'c'}) by_upstream[name] = 0;
  std::mutex failures_mu;
  std::vector<absl::Time> failures;  // when each failed connection began
  std::thread load([&] {  // paced: 200/s, bounded at 30 s
    absl::Time next = absl::Now();
    for (int i = 0; i < 6000 && !stop.load(); ++i) {
      absl::Time began = absl::Now();
      std::string got = Visit(port);
      if (got.empty()) {
        failed.fetch_add(1);
        std::lock_guard<std::mutex> lock(failures_mu);
        failures.push_back(began);
      } else {
        ok.fetch_add(1);
        by_upstream[got[0]].fetch_add(1);
      }
      next += absl::Milliseconds(5);
      absl::SleepFor(next - absl::Now());
    }
  });
  struct JoinAtExit {  // also when an ASSERT returns early
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinAtExit() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } join_at_exit{stop, load};
  ASSERT_TRUE(WaitFor([&] { return ok.load() > 200; }, absl::Seconds(10)));
  b.reset();  // killed: refuses from now on
  absl::Time killed = absl::Now();

  ASSERT_TRUE(WaitFor([&] { return Member(admin, b_port)["up"] == false; }, absl::Seconds(5)))
      << Pool(admin).dump();
  absl::Duration detected = absl::Now() - killed;
  EXPECT_LE(detected, absl::Milliseconds(2 * 200 + 150 + 300)) << "fall x interval, plus slack";
  int ok_while_down = ok.load();
  absl::SleepFor(absl::Seconds(1));
  EXPECT_GT(ok.load(), ok_while_down + 100) << "load stalled while the upstream was down";
  int b_before_restart = by_upstream['b'].load();
  EchoServer again(false, "b", b_port);
  absl::Time restarted = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return Member(admin, b_port)["up"] == true; }, absl::Seconds(5)))
      << Pool(admin).dump();
  absl::Duration back = absl::Now() - restarted;
  EXPECT_LE(back, absl::Milliseconds(3 * 200 + 300)) << "rise x interval, plus slack";
  ASSERT_TRUE(WaitFor([&] { return by_upstream['b'].load() > b_before_restart + 20; },
                      absl::Seconds(5)))
      << "the restarted upstream gets no clients";
  stop.store(true);
  if (load.joinable()) load.join();
  std::string when;
  for (absl::Time t : failures) {
    absl::StrAppend(&when, " ", absl::FormatDuration(t - killed), " after the kill (",
                    absl::FormatDuration(t - restarted), " after the restart);");
  }
  EXPECT_EQ(failed.load(), 0) << "new client connections failed (" << ok.load() << " ok):" << when
                              << "\n" << gw->Log();
  nlohmann::json member = Member(admin, b_port);
  EXPECT_TRUE(absl::StrContains(member["last_change"].get<std::string>(), "up: 2 check(s)"))
      << member.dump();
  EXPECT_TRUE(absl::StrContains(gw->Log(), "upstream 127.0.0.1:" + std::to_string(b_port) + " is down"))
      << gw->Log();
  std::printf("killed upstream: down after %s, up again %s after its restart; %d ok, %d failed "
              "(a %d, b %d, c %d)\n",
              absl::FormatDuration(detected).c_str(), absl::FormatDuration(back).c_str(), ok.load(),
              failed.load(), by_upstream['a'].load(), by_upstream['b'].load(),
              by_upstream['c'].load());
}

// fast_interval (HAProxy's fastinter): once an upstream's checks begin to
// change, the rest of `fall` or `rise` come fast_interval apart, not
// interval. No client traffic here, so the checks alone decide.
TEST_F(UpstreamHealthTest, ChecksComeFastIntervalApartWhileAnUpstreamChangesState) {
  EchoServer a(false, "a");
  auto b = std::make_unique<EchoServer>(false, "b", FreePortOutsideEphemeralRange());
  const int b_port = b->port();
  int port = FreePort();
  auto gw = Start(Config(port, {a.port(), b_port},
                         R"(, "health_check": {"interval": "1s", "fast_interval": "50ms",
                                               "timeout": "40ms", "rise": 3, "fall": 3})"));
  const std::string admin = gw->AdminAddress();
  nlohmann::json status = nlohmann::json::parse(HttpGet(admin, "/status").body, nullptr, false);
  ASSERT_TRUE(status.is_object());
  EXPECT_EQ(status["routes"][0]["health_check"]["fast_interval"], "50ms") << status.dump();
  ASSERT_TRUE(WaitFor([&] { return Member(admin, b_port)["check"]["last"] == "ok"; }, absl::Seconds(3)))
      << Pool(admin).dump();

  b.reset();
  absl::Time killed = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return Member(admin, b_port)["up"] == false; }, absl::Seconds(5)))
      << Pool(admin).dump();
  absl::Duration down = absl::Now() - killed;
  // At most one interval to the first failed check, then 2 more 50 ms
  // apart; every `interval` apart it would take at least 2 s.
  EXPECT_LE(down, absl::Milliseconds(1000 + 2 * 50 + 400)) << Pool(admin).dump();

  EchoServer again(false, "b", b_port);
  absl::Time restarted = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return Member(admin, b_port)["up"] == true; }, absl::Seconds(5)))
      << Pool(admin).dump();
  absl::Duration up = absl::Now() - restarted;
  EXPECT_LE(up, absl::Milliseconds(1000 + 2 * 50 + 400)) << Pool(admin).dump();
  std::printf("interval 1s, fast_interval 50ms, fall/rise 3: down %s after the kill, up %s after "
              "the restart\n",
              absl::FormatDuration(down).c_str(), absl::FormatDuration(up).c_str());
}

TEST_F(UpstreamHealthTest, HttpCheckFollowsTheStatusAndReadyzCanRequireAnUpstream) {
  HttpServer http;
  int port = FreePort();
  auto gw = Start(absl::StrCat(
      R"({"routes": [{"name": "pool", "listen": "127.0.0.1:)", port, R"(", "upstreams": [)",
      Upstreams({http.port()}), R"(], "ready_requires_upstream": true, "health_check": )",
      R"({"interval": "100ms", "rise": 1, "fall": 1, "http_path": "/healthz", "http_status": "200-299"}}]})"));
  const std::string admin = gw->AdminAddress();
  ASSERT_TRUE(WaitFor([&] { return http.requests() >= 2; }, absl::Seconds(5)));
  EXPECT_EQ(HttpGet(admin, "/readyz").status, 200);
  http.SetStatus(503);
  ASSERT_TRUE(WaitFor([&] { return HttpGet(admin, "/readyz").status == 503; }, absl::Seconds(5)));
  EXPECT_EQ(HttpGet(admin, "/readyz").body,
            "not ready: route pool has no upstream up (ready_requires_upstream)\n");
  nlohmann::json member = Member(admin, http.port());
  EXPECT_EQ(member["up"], false);
  EXPECT_EQ(member["check"]["last"], "HTTP status 503 (expected 200-299)") << member.dump();
  // A client now is closed at once and counted.
  int fd = ConnectTo(port);
  ASSERT_GE(fd, 0);
  bool eof = false;
  RecvUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  close(fd);
  EXPECT_TRUE(absl::StrContains(HttpGet(admin, "/metrics").body,
                                "gateway_no_upstream_total{route=\"pool\"} 1"));
  http.SetStatus(204);
  ASSERT_TRUE(WaitFor([&] { return HttpGet(admin, "/readyz").status == 200; }, absl::Seconds(5)));
  std::string metrics = HttpGet(admin, "/metrics").body;
  EXPECT_TRUE(absl::StrContains(metrics, "gateway_upstream_check_latency_seconds{route=\"pool\""))
      << metrics;
}

TEST_F(UpstreamHealthTest, SendExpectCheckNeedsTheExpectedReply) {
  EchoServer echo;  // echoes what the check sends
  int port = FreePort();
  auto gw = Start(Config(port, {echo.port()},
                         R"(, "health_check": {"interval": "100ms", "timeout": "100ms", "rise": 1, )"
                         R"("fall": 1, "send": "PING\r\n", "expect": "PONG"})"));
  const std::string admin = gw->AdminAddress();
  ASSERT_TRUE(WaitFor([&] { return Member(admin, echo.port())["up"] == false; }, absl::Seconds(5)));
  EXPECT_EQ(Member(admin, echo.port())["check"]["last"],
            "replied 'PING\\x0d\\x0a', not what was expected, within 100ms")
      << Pool(admin).dump();
  std::ofstream(config_) << Config(port, {echo.port()},
                                   R"(, "health_check": {"interval": "100ms", "rise": 1, )"
                                   R"("fall": 1, "send": "PING\r\n", "expect": "PING"})");
  SignalFromSibling(gw->pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Member(admin, echo.port())["up"] == true; }, absl::Seconds(5)))
      << Pool(admin).dump() << gw->Log();
  EXPECT_EQ(Member(admin, echo.port())["check"]["last"], "ok");
}

// drain and disable through gatewayctl with live traffic: no new
// connection goes to the upstream, the open one keeps relaying, enable
// brings it back; the state is kept across SIGHUP and across replace.
TEST_F(UpstreamHealthTest, DrainDisableEnableThroughGatewayctlSurviveSighupAndReplace) {
  EchoServer a(false, "a"), b(false, "b");
  int port = FreePort();
  auto gw = Start(Config(port, {a.port(), b.port()}, kFastChecks));
  const std::string admin = gw->AdminAddress();
  const std::string b_address = absl::StrCat("127.0.0.1:", b.port());
  int held = -1;
  for (int i = 0; i < 4 && held < 0; ++i) {
    int fd = -1;
    if (Visit(port, "127.0.0.1", &fd) == "b") {
      held = fd;
    } else if (fd >= 0) {
      close(fd);
    }
  }
  ASSERT_GE(held, 0) << "no connection reached b";
  RunResult drained = Ctl(*gw, {"upstream", "drain", "pool", b_address, "--json"});
  ASSERT_EQ(drained.status.code, 0) << drained.err;
  nlohmann::json answer = nlohmann::json::parse(drained.out, nullptr, false);
  EXPECT_EQ(answer["upstream"]["admin"], "drain") << drained.out;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(Visit(port), "a") << i;
  ASSERT_TRUE(SendAll(held, "y") && RecvExactly(held, 1) == "y") << "a draining upstream's open "
                                                                    "connection was cut";
  close(held);
  // Kept across SIGHUP.
  SignalFromSibling(gw->pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw->Log(), "SIGHUP: 1 route(s) in force"); },
                      absl::Seconds(10)));
  EXPECT_EQ(Member(admin, b.port())["admin"], "drain");
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Visit(port), "a");
  // Kept across replace.
  RunResult replaced = Ctl(*gw, {"replace", "--json"});
  ASSERT_EQ(replaced.status.code, 0) << replaced.err << gw->Log();
  pid_t successor = nlohmann::json::parse(replaced.out)["new_pid"].get<pid_t>();
  nlohmann::json status = nlohmann::json::parse(HttpGet(admin, "/status").body, nullptr, false);
  EXPECT_EQ(status["pid"], successor);
  EXPECT_EQ(Member(admin, b.port())["admin"], "drain") << Pool(admin).dump();
  EXPECT_TRUE(absl::StrContains(Member(admin, b.port())["last_change"].get<std::string>(),
                                "admin: drain (gatewayctl)"));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Visit(port), "a");
  // disable (in the successor) pauses its checks; enable brings it back.
  RunResult disabled = Ctl(*gw, {"upstream", "disable", "pool", b_address});
  ASSERT_EQ(disabled.status.code, 0) << disabled.err;
  EXPECT_TRUE(absl::StrContains(disabled.out, "disabled")) << disabled.out;
  RunResult listed = Ctl(*gw, {"upstream", "list", "--json"});
  ASSERT_EQ(listed.status.code, 0) << listed.err;
  nlohmann::json list = nlohmann::json::parse(listed.out, nullptr, false);
  EXPECT_EQ(list["routes"][0]["upstreams"][1]["admin"], "disabled") << listed.out;
  // gatewayctl status and /metrics show it too, with what changed it.
  RunResult status_text = Ctl(*gw, {"status"});
  EXPECT_TRUE(absl::StrContains(status_text.out, absl::StrCat("    ", b_address, "  up, disabled; ")))
      << status_text.out;
  EXPECT_TRUE(absl::StrContains(status_text.out, ": admin: disabled (gatewayctl)")) << status_text.out;
  EXPECT_TRUE(absl::StrContains(HttpGet(admin, "/metrics").body,
                                absl::StrCat("gateway_upstream_last_change_timestamp_seconds{route="
                                             "\"pool\",upstream=\"", b_address, "\",cause=\"admin\"} ")));
  EXPECT_EQ(Member(admin, b.port())["last_change_cause"], "admin");
  RunResult enabled = Ctl(*gw, {"upstream", "enable", "pool", b_address});
  ASSERT_EQ(enabled.status.code, 0) << enabled.err;
  int to_b = 0;
  for (int i = 0; i < 20; ++i) to_b += Visit(port) == "b";
  EXPECT_EQ(to_b, 10) << "round robin over two after enable";
  // Mistakes are one line and exit 1 / 2.
  RunResult unknown = Ctl(*gw, {"upstream", "drain", "pool", "127.0.0.1:1"});
  EXPECT_EQ(unknown.status.code, 1);
  EXPECT_EQ(unknown.err, "gatewayctl: route pool has no upstream 127.0.0.1:1\n");
  RunResult no_route = Ctl(*gw, {"upstream", "drain", "nope", b_address});
  EXPECT_EQ(no_route.err, "gatewayctl: no route named 'nope'\n");
  RunResult usage = Ctl(*gw, {"upstream", "drain", "pool"});
  EXPECT_EQ(usage.status.code, 2);
  std::string metrics = HttpGet(admin, "/metrics").body;
  EXPECT_TRUE(absl::StrContains(metrics, absl::StrCat("gateway_upstream_admin_state{route=\"pool\","
                                                      "upstream=\"", b_address,
                                                      "\",state=\"enabled\"} 1")))
      << metrics;
  EXPECT_EQ(Ctl(*gw, {"stop"}).status.code, 0);
}

// What the checks found is inherited too: an upstream down in the old
// process is down in the successor from its first connection on.
TEST_F(UpstreamHealthTest, HealthStateIsHandedToTheSuccessor) {
  EchoServer a(false, "a");
  auto b = std::make_unique<EchoServer>(false, "b", FreePortOutsideEphemeralRange());
  const int b_port = b->port();
  int port = FreePort();
  auto gw = Start(Config(port, {a.port(), b_port},
                         R"(, "health_check": {"interval": "1s", "rise": 2, "fall": 1})"));
  const std::string admin = gw->AdminAddress();
  b.reset();
  ASSERT_TRUE(WaitFor([&] { return Member(admin, b_port)["up"] == false; }, absl::Seconds(5)));
  RunResult replaced = Ctl(*gw, {"replace", "--json"});
  ASSERT_EQ(replaced.status.code, 0) << replaced.err;
  EXPECT_EQ(Member(admin, b_port)["up"], false) << Pool(admin).dump();
  nlohmann::json metrics_free = Member(admin, b_port);
  EXPECT_EQ(metrics_free["connect_errors"], 0) << "the successor tried the dead upstream";
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Visit(port), "a");
  EXPECT_EQ(Ctl(*gw, {"stop"}).status.code, 0);
}

// least_conn sends new clients to the upstream with the fewest open.
TEST_F(UpstreamHealthTest, LeastConnFollowsTheOpenConnections) {
  EchoServer a(false, "a"), b(false, "b");
  int port = FreePort();
  auto gw = Start(Config(port, {a.port(), b.port()}, R"(, "balance": "least_conn")"),
                  {"--workers=2"});
  std::map<char, std::vector<int>> open;
  for (int i = 0; i < 6; ++i) {
    int fd = -1;
    std::string got = Visit(port, "127.0.0.1", &fd);
    ASSERT_FALSE(got.empty());
    open[got[0]].push_back(fd);
  }
  EXPECT_EQ(open['a'].size(), 3u);
  EXPECT_EQ(open['b'].size(), 3u);
  for (int fd : open['a']) close(fd);
  open['a'].clear();
  // The gateway sees the three close; then a has 0 open, b has 3.
  ASSERT_TRUE(WaitFor([&] { return Member(gw->AdminAddress(), a.port())["connections_active"] == 0; },
                      absl::Seconds(5)));
  for (int i = 0; i < 3; ++i) {
    int fd = -1;
    EXPECT_EQ(Visit(port, "127.0.0.1", &fd), "a") << i;
    open['a'].push_back(fd);
  }
  int fd = -1;
  std::string tie = Visit(port, "127.0.0.1", &fd);  // 3 and 3: either
  EXPECT_FALSE(tie.empty());
  close(fd);
  for (auto& [name, fds] : open) {
    for (int f : fds) close(f);
  }
}

// hash: a client address keeps its upstream; removing one of four moves
// only its clients, adding it back moves about a quarter.
TEST_F(UpstreamHealthTest, HashIsStableAndMovesAboutOneInN) {
  EchoServer a(false, "a"), b(false, "b"), c(false, "c"), d(false, "d");
  int port = FreePort();
  const std::string hash = R"(, "balance": "hash")";
  auto gw = Start(Config(port, {a.port(), b.port(), c.port(), d.port()}, hash));
  constexpr int kClients = 400;
  auto source = [](int i) { return absl::StrCat("127.0.", 1 + i / 200, ".", 1 + i % 200); };
  auto map_clients = [&] {
    std::vector<std::string> m;
    for (int i = 0; i < kClients; ++i) m.push_back(Visit(port, source(i)));
    return m;
  };
  std::vector<std::string> first = map_clients();
  std::vector<std::string> second = map_clients();
  EXPECT_EQ(first, second) << "a client changed upstream with nothing changed";
  std::map<std::string, int> spread;
  for (const std::string& u : first) ++spread[u];
  for (const char* u : {"a", "b", "c", "d"}) {
    EXPECT_GT(spread[u], kClients / 4 / 2) << u << " gets too few clients";
  }
  auto reload = [&](const std::vector<int>& ports) {
    std::ofstream(config_) << Config(port, ports, hash);
    std::string marker = absl::StrCat("SIGHUP: 1 route(s) in force");
    size_t seen = 0;
    for (size_t at = gw->Log().find(marker); at != std::string::npos;
         at = gw->Log().find(marker, at + 1)) {
      ++seen;
    }
    SignalFromSibling(gw->pid(), SIGHUP);
    ASSERT_TRUE(WaitFor(
        [&] {
          size_t now = 0;
          std::string log = gw->Log();
          for (size_t at = log.find(marker); at != std::string::npos; at = log.find(marker, at + 1)) {
            ++now;
          }
          return now > seen;
        },
        absl::Seconds(10)));
  };
  reload({a.port(), b.port(), c.port()});  // d removed
  std::vector<std::string> without_d = map_clients();
  int moved = 0;
  for (int i = 0; i < kClients; ++i) {
    if (first[i] != "d") {
      EXPECT_EQ(without_d[i], first[i]) << "client " << source(i) << " moved although its upstream stayed";
    } else {
      EXPECT_NE(without_d[i], "d");
      ++moved;
    }
  }
  reload({a.port(), b.port(), c.port(), d.port()});  // d back
  std::vector<std::string> with_d = map_clients();
  int moved_back = 0;
  for (int i = 0; i < kClients; ++i) moved_back += with_d[i] != without_d[i];
  EXPECT_EQ(with_d, first) << "adding d back did not restore the first mapping";
  EXPECT_NEAR(moved_back, kClients / 4, kClients / 10);
  std::printf("hash over 4: %d / %d / %d / %d clients; removing d moved %d, adding it back %d\n",
              spread["a"], spread["b"], spread["c"], spread["d"], moved, moved_back);
}

TEST_F(UpstreamHealthTest, BadHealthCheckConfigsAreOneLineAndExit78) {
  int port = FreePort();
  const std::pair<std::string, std::string> cases[] = {
      {R"(, "health_check": {"interval": "5ms"})", "health_check: bad interval"},
      {R"(, "health_check": {"interval": "1s", "timeout": "2s"})", "timeout is longer than interval"},
      {R"(, "health_check": {"rise": 0})", "\"rise\" must be an integer from 1 to 100"},
      {R"(, "health_check": {"interval": "1s", "fast_interval": "2s"})",
       "fast_interval is longer than interval"},
      {R"(, "health_check": {"http_path": "/", "send": "x"})", "http_path and send/expect together"},
      {R"(, "health_check": {"http_path": "/", "http_status": "600"})", "bad http_status '600'"},
      {R"(, "health_check": {"htp_path": "/"})", "health_check: unknown key 'htp_path'"},
      {R"(, "ready_requires_upstream": "yes")", "\"ready_requires_upstream\" must be true or false"},
  };
  int n = 0;
  for (const auto& [extra, error] : cases) {
    std::ofstream(config_) << Config(port, {9}, extra);
    Gateway gw(absl::StrCat(TestName(), ++n), Gateway::Options{{"--config=" + config_}});
    ExitStatus exit = gw.Wait();
    EXPECT_TRUE(exit.exited && exit.code == 78) << exit.Describe() << gw.Log();
    EXPECT_TRUE(absl::StrContains(gw.Log(), error)) << error << "\n" << gw.Log();
  }
}

}  // namespace
}  // namespace gateway::testing
