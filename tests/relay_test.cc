// Black-box: the data plane of the real //gateway binary — byte-exact
// relay both ways, half-close, many concurrent connections, upstream down,
// draining, the admin server and config reloads.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::string Route(int listen_port, int upstream_port, bool ipv6 = false) {
  std::string host = ipv6 ? "[::1]" : "127.0.0.1";
  return absl::StrCat("--route=", host, ":", listen_port, "=", host, ":", upstream_port);
}

class RelayTest : public ::testing::Test {
 protected:
  // A gateway relaying a fresh port to `upstream_port`.
  std::unique_ptr<Gateway> StartGateway(int upstream_port, std::vector<std::string> flags = {},
                                        bool ipv6 = false) {
    port_ = FreePort(ipv6);
    Gateway::Options options;
    options.flags = std::move(flags);
    options.flags.push_back(Route(port_, upstream_port, ipv6));
    auto gw = std::make_unique<Gateway>(TestName(), options);
    EXPECT_TRUE(gw->WaitReady()) << gw->Log();
    return gw;
  }
  int port_ = 0;
};

TEST_F(RelayTest, LargeRandomPayloadsAreRelayedByteExactBothWays) {
  std::string greeting = RandomBytes(8 << 20, 7);  // upstream → client first
  EchoServer upstream(false, greeting);
  auto gw = StartGateway(upstream.port());
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(RecvExactly(fd, greeting.size()), greeting);
  std::string payload = RandomBytes(32 << 20, 11);
  std::thread writer([&] {
    SendAll(fd, payload);
    shutdown(fd, SHUT_WR);
  });
  bool eof = false;
  std::string echoed = RecvUntilEof(fd, &eof);
  writer.join();
  close(fd);
  EXPECT_TRUE(eof);
  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload) << "payload corrupted in transit";
}

TEST_F(RelayTest, HalfCloseIsPropagated) {
  EchoServer upstream;
  auto gw = StartGateway(upstream.port());
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "request"));
  // The client says it is done sending; the upstream must see EOF, answer
  // and close its side, and the client must still get the whole answer.
  ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
  bool eof = false;
  EXPECT_EQ(RecvUntilEof(fd, &eof), "request");
  EXPECT_TRUE(eof);
  close(fd);
}

TEST_F(RelayTest, FiveHundredConcurrentConnections) {
  EchoServer upstream;
  auto gw = StartGateway(upstream.port());
  constexpr int kConnections = 500;
  std::vector<int> fds;
  for (int i = 0; i < kConnections; ++i) {
    int fd = ConnectTo(port_);
    ASSERT_GE(fd, 0) << "connection " << i;
    fds.push_back(fd);
  }
  for (int i = 0; i < kConnections; ++i) ASSERT_TRUE(SendAll(fds[i], absl::StrCat("hello ", i, ";")));
  int ok = 0;
  for (int i = 0; i < kConnections; ++i) {
    std::string expected = absl::StrCat("hello ", i, ";");
    if (RecvExactly(fds[i], expected.size()) == expected) ++ok;
  }
  EXPECT_EQ(ok, kConnections);
  HttpReply status = HttpGet(gw->AdminAddress(), "/status");
  nlohmann::json j = nlohmann::json::parse(status.body, nullptr, false);
  EXPECT_EQ(j["connections_active"], kConnections) << status.body;
  for (int fd : fds) close(fd);
  EXPECT_TRUE(WaitFor(
      [&] {
        nlohmann::json s = nlohmann::json::parse(HttpGet(gw->AdminAddress(), "/status").body,
                                                 nullptr, false);
        return s.is_object() && s["connections_active"] == 0;
      },
      absl::Seconds(10)))
      << "connections were not released";
}

TEST_F(RelayTest, Ipv6RoutesWork) {
  EchoServer upstream(/*ipv6=*/true);
  auto gw = StartGateway(upstream.port(), {}, /*ipv6=*/true);
  int fd = ConnectTo(port_, /*ipv6=*/true);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "six"));
  EXPECT_EQ(RecvExactly(fd, 3), "six");
  close(fd);
}

TEST_F(RelayTest, UpstreamDownClosesTheClientPromptlyAndIsCounted) {
  int dead_port = FreePort();
  auto gw = StartGateway(dead_port);
  absl::Time start = absl::Now();
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  bool eof = false;
  EXPECT_EQ(RecvUntilEof(fd, &eof), "");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  close(fd);
  std::string metrics = HttpGet(gw->AdminAddress(), "/metrics").body;
  EXPECT_NE(metrics.find(absl::StrCat("gateway_upstream_connect_errors_total{route=\"127.0.0.1:",
                                      port_, "\"} 1")),
            std::string::npos)
      << metrics;
}

TEST_F(RelayTest, OpenConnectionSurvivesSigtermUntilItFinishes) {
  EchoServer upstream;
  auto gw = StartGateway(upstream.port());
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "before"));
  ASSERT_EQ(RecvExactly(fd, 6), "before");
  SignalFromSibling(gw->pid(), SIGTERM);
  // Draining: readiness fails, new connections are refused, the open one
  // keeps working.
  EXPECT_TRUE(WaitFor([&] { return HttpGet(gw->AdminAddress(), "/readyz").status == 503; },
                      absl::Seconds(5)));
  // Listeners close just after /readyz fails (in every worker); the drain
  // starts once they are closed.
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw->Log(), "draining 1 connection(s)"); },
                      absl::Seconds(5)))
      << gw->Log();
  EXPECT_LT(ConnectTo(port_), 0) << "accepted a connection while draining";
  ASSERT_TRUE(SendAll(fd, "during"));
  EXPECT_EQ(RecvExactly(fd, 6), "during");
  EXPECT_TRUE(gw->child().Running());
  shutdown(fd, SHUT_WR);
  bool eof = false;
  RecvUntilEof(fd, &eof);
  EXPECT_TRUE(eof);
  close(fd);
  ExitStatus status = gw->Wait(absl::Seconds(10));
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe();
  nlohmann::json record = gw->Record();
  EXPECT_EQ(record["drain"]["connections_at_signal"], 1);
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 0);
}

TEST_F(RelayTest, StuckConnectionIsCutAtTheDrainDeadlineAndCounted) {
  EchoServer upstream;
  auto gw = StartGateway(upstream.port(), {"--drain_timeout=1s"});
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "x"));
  ASSERT_EQ(RecvExactly(fd, 1), "x");
  absl::Time signalled = absl::Now();
  gw->child().Signal(SIGINT);
  ExitStatus status = gw->Wait(absl::Seconds(10));
  absl::Duration took = absl::Now() - signalled;
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(5));
  nlohmann::json record = gw->Record();
  EXPECT_EQ(record["drain"]["connections_at_signal"], 1);
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 1);
  bool eof = false;
  RecvUntilEof(fd, &eof);  // the client sees the cut
  close(fd);
}

TEST_F(RelayTest, SecondSignalSkipsTheRestOfTheDrain) {
  EchoServer upstream;
  auto gw = StartGateway(upstream.port(), {"--drain_timeout=30s"});
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "x"));
  ASSERT_EQ(RecvExactly(fd, 1), "x");
  SignalFromSibling(gw->pid(), SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return HttpGet(gw->AdminAddress(), "/readyz").status == 503; },
                      absl::Seconds(5)));
  gw->child().Signal(SIGINT);  // second stop signal, a different kind even
  ExitStatus status = gw->Wait(absl::Seconds(5));
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << " (verdict must stay)";
  nlohmann::json record = gw->Record();
  EXPECT_EQ(record["class"], "unexpected");
  EXPECT_EQ(record["signal"], "SIGTERM");
  EXPECT_EQ(record["drain"]["skipped"], "second stop signal (SIGINT)");
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 1);
  close(fd);
}

// Checks the Prometheus text exposition format line by line.
void ExpectPrometheusText(const std::string& text) {
  static const std::regex sample(
      R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.eE+-]+$)");
  static const std::regex help(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
  static const std::regex type(R"(^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$)");
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  std::string family;
  int samples = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::string l(line);
    if (l.rfind("# HELP", 0) == 0) {
      EXPECT_TRUE(std::regex_match(l, help)) << l;
    } else if (l.rfind("# TYPE", 0) == 0) {
      EXPECT_TRUE(std::regex_match(l, type)) << l;
      family = l.substr(7, l.find(' ', 7) - 7);
    } else {
      EXPECT_TRUE(std::regex_match(l, sample)) << l;
      EXPECT_EQ(l.rfind(family, 0), 0u) << "sample outside its family: " << l;
      ++samples;
    }
  }
  EXPECT_GT(samples, 10);
}

TEST_F(RelayTest, AdminEndpointsAnswer) {
  EchoServer upstream;
  auto gw = StartGateway(upstream.port());
  std::string admin = gw->AdminAddress();
  ASSERT_FALSE(admin.empty());
  EXPECT_EQ(HttpGet(admin, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(admin, "/readyz").status, 200);
  EXPECT_EQ(HttpGet(admin, "/nope").status, 404);
  int fd = ConnectTo(port_);
  ASSERT_TRUE(SendAll(fd, "abc"));
  ASSERT_EQ(RecvExactly(fd, 3), "abc");
  close(fd);
  HttpReply metrics = HttpGet(admin, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  ExpectPrometheusText(metrics.body);
  EXPECT_NE(metrics.body.find("gateway_draining 0"), std::string::npos);
  EXPECT_NE(metrics.body.find("gateway_previous_run_info{exit=\"none\""), std::string::npos);
  nlohmann::json status = nlohmann::json::parse(HttpGet(admin, "/status").body, nullptr, false);
  ASSERT_TRUE(status.is_object());
  EXPECT_EQ(status["pid"], gw->pid());
  EXPECT_EQ(status["phase"], "serving");
  EXPECT_EQ(status["routes"][0]["upstream"], absl::StrCat("127.0.0.1:", upstream.port()));
  EXPECT_EQ(status["detectors"].size(), 6u);
  EXPECT_TRUE(status.contains("previous_run"));
  EXPECT_TRUE(status.contains("last_shutdown"));
}

TEST_F(RelayTest, SighupReloadsTheConfigAndKeepsItWhenTheNewOneIsBad) {
  EchoServer first;
  EchoServer second;
  std::string dir = FreshTempDir("reload-config");
  std::string config = dir + "/gateway.json";
  int port_a = FreePort();
  int port_b = FreePort();
  auto write_config = [&](const std::string& text) { std::ofstream(config) << text; };
  write_config(absl::StrCat(R"({"routes": [{"name": "a", "listen": "127.0.0.1:)", port_a,
                            R"(", "upstream": "127.0.0.1:)", first.port(), R"("}]})"));
  Gateway::Options options;
  options.flags = {"--config=" + config};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  ASSERT_GE(ConnectTo(port_a), 0);

  write_config(absl::StrCat(R"({"routes": [{"name": "b", "listen": "127.0.0.1:)", port_b,
                            R"(", "upstream": "127.0.0.1:)", second.port(), R"("}]})"));
  SignalFromSibling(gw.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] {
    int fd = ConnectTo(port_b);
    if (fd >= 0) close(fd);
    return fd >= 0;
  }, absl::Seconds(5))) << gw.Log();
  EXPECT_LT(ConnectTo(port_a), 0) << "removed route still listening";

  write_config("{ broken");
  SignalFromSibling(gw.pid(), SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return gw.Log().find("SIGHUP: keeping the current routes") !=
                                   std::string::npos; },
                      absl::Seconds(5)));
  EXPECT_NE(gw.Log().find("malformed or truncated JSON"), std::string::npos);
  int fd = ConnectTo(port_b);
  ASSERT_GE(fd, 0) << "bad reload dropped the route";
  ASSERT_TRUE(SendAll(fd, "still"));
  EXPECT_EQ(RecvExactly(fd, 5), "still");
  close(fd);
  EXPECT_TRUE(gw.child().Running()) << "SIGHUP is not a stop";
  EXPECT_NE(HttpGet(gw.AdminAddress(), "/metrics").body.find(
                "gateway_config_reloads_total{result=\"failed\"} 1"),
            std::string::npos);
}

TEST_F(RelayTest, BusyListenAddressIsAStartUpFailureWithOneLine) {
  EchoServer upstream;
  // The echo server's own port is busy: listen there (relaying elsewhere:
  // a route to its own listen address is refused before any bind).
  Gateway::Options options;
  options.flags = {Route(upstream.port(), FreePort())};
  Gateway gw(TestName(), options);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 75) << status.Describe();
  std::string log = gw.Log();
  EXPECT_NE(log.find(absl::StrCat("gateway: error: route 127.0.0.1:", upstream.port(),
                                  ": cannot listen on 127.0.0.1:", upstream.port(),
                                  ": address already in use")),
            std::string::npos)
      << log;
  EXPECT_FALSE(Exists(gw.state_dir() + "/running")) << "a start-up failure is not a crash";
}

TEST_F(RelayTest, SocketActivatedListenerIsUsedInsteadOfBinding) {
  const std::string activate = "/usr/bin/systemd-socket-activate";
  if (!Exists(activate)) {
    GTEST_SKIP() << "systemd-socket-activate (Debian package systemd) is not installed";
  }
  EchoServer upstream;
  int port = FreePort();
  std::string state_dir = FreshTempDir("socket-activation") + "/state";
  Child::Options options;
  options.argv = {activate, absl::StrCat("--listen=127.0.0.1:", port), Runfile("gateway/gateway"),
                  "--state_dir=" + state_dir, "--admin=127.0.0.1:0",
                  absl::StrCat("--route=127.0.0.1:", port, "=127.0.0.1:", upstream.port())};
  options.env = BaseEnvironment();
  Child activator(options);
  // systemd-socket-activate owns the socket and starts the gateway on the
  // first connection; the gateway must serve that very connection from the
  // passed descriptor (binding the address itself would fail: it is taken).
  int fd = -1;
  ASSERT_TRUE(WaitFor([&] { return (fd = ConnectTo(port)) >= 0; }, absl::Seconds(5)));
  ASSERT_TRUE(SendAll(fd, "activated"));
  EXPECT_EQ(RecvExactly(fd, 9), "activated") << activator.Stderr();
  close(fd);
  EXPECT_NE(activator.Stderr().find("socket activation: 1 socket(s)"), std::string::npos)
      << activator.Stderr();
  RunResult stop = Gatewayctl({"stop", "--state_dir=" + state_dir});
  EXPECT_EQ(stop.status.code, 0) << stop.err;
  ExitStatus status = activator.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
}

}  // namespace
}  // namespace gateway::testing
