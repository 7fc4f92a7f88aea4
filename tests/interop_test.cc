// Interop with real peers (installed by ./bazelw; never started as
// services, each test runs its own instance on loopback):
//   - nginx `listen … proxy_protocol` as an upstream that reports the
//     address it received: the gateway's send_proxy v1 and v2;
//   - HAProxy `send-proxy` / `send-proxy-v2` in front of the gateway's
//     accept_proxy: it logs and balances by the address HAProxy saw;
//   - logrotate with `postrotate gatewayctl reopen-logs` and with SIGUSR1,
//     under load: no line lost, none in the old file after the reopen;
//   - the migration example of docs/configuration.md: HAProxy's config
//     and Gateway's (docs/examples/) serve the same three backends alike.
// A missing peer skips its test with the reason (a machine without apt).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

constexpr char kNginx[] = "/usr/sbin/nginx";
constexpr char kNginxStream[] = "/usr/lib/nginx/modules/ngx_stream_module.so";
constexpr char kHaproxy[] = "/usr/sbin/haproxy";
constexpr char kLogrotate[] = "/usr/sbin/logrotate";

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// Waits until something accepts on 127.0.0.1:`port`.
bool WaitListening(int port) {
  return WaitFor(
      [&] {
        int fd = ConnectTo(port, false, absl::Seconds(1));
        if (fd < 0) return false;
        close(fd);
        return true;
      },
      absl::Seconds(10));
}

std::vector<nlohmann::json> Lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return lines;
}

size_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

// The greeting byte of the upstream a connection from `source` reached.
std::string Visit(int port, const std::string& source) {
  int fd = ConnectFrom(source, port);
  if (fd < 0) return "";
  std::string got = RecvExactly(fd, 1);
  bool echoed = SendAll(fd, "x") && RecvExactly(fd, 1) == "x";
  close(fd);
  return echoed ? got : "";
}

class InteropTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = FreshTempDir(TestName()); }
  std::unique_ptr<Child> Run(const std::string& name, std::vector<std::string> argv) {
    Child::Options options;
    options.argv = std::move(argv);
    options.env = BaseEnvironment();
    options.output_dir = dir_ + "/" + name;
    mkdir(options.output_dir.c_str(), 0755);
    return std::make_unique<Child>(options);
  }
  std::unique_ptr<Child> Nginx(const std::string& stream_servers) {
    std::ofstream(dir_ + "/nginx.conf") << absl::StrCat(
        "load_module ", kNginxStream, ";\n", "daemon off;\nworker_processes 1;\n", "pid ", dir_,
        "/nginx.pid;\n", "error_log ", dir_, "/nginx-error.log;\n",
        "events { worker_connections 128; }\n", "stream {\n", stream_servers, "}\n");
    return Run("nginx", {kNginx, "-p", dir_, "-e", dir_ + "/nginx-error.log", "-c",
                         dir_ + "/nginx.conf"});
  }
  std::unique_ptr<Child> Haproxy(const std::string& config) {
    std::ofstream(dir_ + "/haproxy.cfg") << config;
    return Run("haproxy", {kHaproxy, "-db", "-f", dir_ + "/haproxy.cfg"});
  }
  std::unique_ptr<Gateway> StartGateway(const std::string& config,
                                        std::vector<std::string> flags = {}) {
    std::ofstream(dir_ + "/gateway.json") << config;
    flags.push_back("--config=" + dir_ + "/gateway.json");
    auto gw = std::make_unique<Gateway>(TestName(), Gateway::Options{flags});
    EXPECT_TRUE(gw->WaitReady()) << gw->Log();
    return gw;
  }
  std::string dir_;
};

TEST_F(InteropTest, NginxBehindTheGatewayReceivesTheClientAddressByV1AndV2) {
  if (!Executable(kNginx) || access(kNginxStream, R_OK) != 0) {
    GTEST_SKIP() << "nginx with libnginx-mod-stream is missing (./bazelw installs nginx-light "
                    "and libnginx-mod-stream)";
  }
  int nginx_v1 = FreePort(), nginx_v2 = FreePort();
  auto nginx = Nginx(absl::StrCat(
      "  server { listen 127.0.0.1:", nginx_v1,
      " proxy_protocol; return \"$proxy_protocol_addr:$proxy_protocol_port\\n\"; }\n",
      "  server { listen 127.0.0.1:", nginx_v2,
      " proxy_protocol; return \"$proxy_protocol_addr:$proxy_protocol_port\\n\"; }\n"));
  ASSERT_TRUE(WaitListening(nginx_v1) && WaitListening(nginx_v2))
      << ReadText(dir_ + "/nginx-error.log") << nginx->Stderr();
  int v1 = FreePort(), v2 = FreePort();
  auto gw = StartGateway(absl::StrCat(
      R"({"routes": [{"name": "v1", "listen": "127.0.0.1:)", v1, R"(", "upstream": "127.0.0.1:)",
      nginx_v1, R"(", "send_proxy": "v1"}, {"name": "v2", "listen": "127.0.0.1:)", v2,
      R"(", "upstream": "127.0.0.1:)", nginx_v2, R"(", "send_proxy": "v2"}]})"));
  for (auto [port, version] : {std::pair<int, const char*>{v1, "v1"}, {v2, "v2"}}) {
    int fd = ConnectFrom("127.0.0.7", port);
    ASSERT_GE(fd, 0);
    sockaddr_in own = {};
    socklen_t len = sizeof own;
    getsockname(fd, reinterpret_cast<sockaddr*>(&own), &len);
    std::string reported = RecvUntilEof(fd);
    close(fd);
    EXPECT_EQ(reported, absl::StrCat("127.0.0.7:", ntohs(own.sin_port), "\n"))
        << version << ": nginx did not see the client's address";
    std::printf("nginx behind send_proxy %s reported %s", version, reported.c_str());
  }
}

TEST_F(InteropTest, HaproxyInFrontSendsTheAddressTheGatewayLogsAndBalancesBy) {
  if (!Executable(kHaproxy)) GTEST_SKIP() << "haproxy is missing (./bazelw installs it)";
  EchoServer a(false, "a"), b(false, "b"), c(false, "c");
  int proxied = FreePort(), proxied_v1 = FreePort(), direct = FreePort();
  std::string pool = absl::StrCat(R"("upstreams": ["127.0.0.1:)", a.port(), R"(", "127.0.0.1:)",
                                  b.port(), R"(", "127.0.0.1:)", c.port(), R"("], "balance": "hash")");
  std::string log = dir_ + "/access.log";
  auto gw = StartGateway(
      absl::StrCat(R"({"routes": [{"name": "proxied", "listen": "127.0.0.1:)", proxied, R"(", )",
                   pool, R"(, "accept_proxy": true}, {"name": "proxied_v1", "listen": "127.0.0.1:)",
                   proxied_v1, R"(", )", pool, R"(, "accept_proxy": true}, {"name": "direct", "listen": "127.0.0.1:)",
                   direct, R"(", )", pool, "}]}"),
      {"--access_log=" + log});
  int front_v2 = FreePort(), front_v1 = FreePort();
  auto haproxy = Haproxy(absl::StrCat(
      "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n",
      "frontend v2\n  bind 127.0.0.1:", front_v2, "\n  default_backend gw_v2\n",
      "frontend v1\n  bind 127.0.0.1:", front_v1, "\n  default_backend gw_v1\n",
      "backend gw_v2\n  server gw 127.0.0.1:", proxied, " send-proxy-v2\n",
      "backend gw_v1\n  server gw 127.0.0.1:", proxied_v1, " send-proxy\n"));
  ASSERT_TRUE(WaitListening(front_v2) && WaitListening(front_v1)) << haproxy->Stderr();
  int same = 0;
  constexpr int kClients = 30;
  for (int i = 1; i <= kClients; ++i) {
    std::string source = absl::StrCat("127.0.1.", i);
    std::string via_v2 = Visit(front_v2, source);
    std::string via_v1 = Visit(front_v1, source);
    std::string straight = Visit(direct, source);
    ASSERT_FALSE(straight.empty());
    EXPECT_EQ(via_v2, straight) << source << ": through HAProxy (v2) not balanced by its address";
    EXPECT_EQ(via_v1, straight) << source << ": through HAProxy (v1) not balanced by its address";
    same += via_v2 == straight;
  }
  EXPECT_EQ(same, kClients);
  // (WaitListening's probes went through HAProxy too, from 127.0.0.1.)
  auto from_test_clients = [&](bool proxied) {
    int n = 0;
    for (const nlohmann::json& line : Lines(log)) {
      n += (line["route"] != "direct") == proxied &&
           absl::StartsWith(line["client"].get<std::string>(), "127.0.1.");
    }
    return n;
  };
  // The access log is written by a thread of its own: wait for both counts
  // (the last direct connection's line can land after the proxied ones).
  EXPECT_TRUE(WaitFor(
      [&] { return from_test_clients(true) == 2 * kClients && from_test_clients(false) == kClients; },
      absl::Seconds(10)))
      << from_test_clients(true) << " " << from_test_clients(false) << "\n" << ReadText(log);
  EXPECT_EQ(from_test_clients(false), kClients);
  EXPECT_EQ(from_test_clients(true), 2 * kClients);
}

// logrotate rotates the access log under load, once with postrotate
// `gatewayctl reopen-logs` and once with SIGUSR1.
TEST_F(InteropTest, LogrotateUnderLoadLosesNoLine) {
  if (!Executable(kLogrotate)) GTEST_SKIP() << "logrotate is missing (./bazelw installs it)";
  EchoServer echo;
  int port = FreePort();
  std::string log = dir_ + "/access.log";
  auto gw = StartGateway(absl::StrCat(R"({"routes": [{"name": "r", "listen": "127.0.0.1:)", port,
                                      R"(", "upstream": "127.0.0.1:)", echo.port(), R"("}]})"),
                         {"--access_log=" + log});
  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, failed{0};
  std::thread load([&] {
    for (int i = 0; i < 50000 && !stop.load(); ++i) {
      int fd = ConnectTo(port);
      bool ok = fd >= 0 && SendAll(fd, "hello") && RecvExactly(fd, 5) == "hello";
      if (fd >= 0) close(fd);
      (ok ? done : failed)++;
    }
  });
  const std::string postrotate[] = {
      absl::StrCat(Runfile("tools/gatewayctl/gatewayctl"), " reopen-logs --state_dir=",
                   gw->state_dir()),
      absl::StrCat("/bin/kill -USR1 ", gw->pid()),
  };
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(WaitFor([&] { return FileSize(log) > 50000; }, absl::Seconds(20)));
    std::ofstream(dir_ + "/logrotate.conf")
        << absl::StrCat(log, " {\n  su root root\n  rotate 5\n  create 0640\n  missingok\n",
                        "  postrotate\n    ", postrotate[round], "\n  endscript\n}\n");
    RunResult rotated = RunCommand(
        {kLogrotate, "-f", "-s", dir_ + "/logrotate.state", dir_ + "/logrotate.conf"});
    ASSERT_EQ(rotated.status.code, 0) << rotated.err << rotated.out;
    if (round == 1) {
      ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw->Log(), "SIGUSR1: access log reopened"); },
                          absl::Seconds(5)));
    }
    size_t old_size = FileSize(log + ".1");
    ASSERT_GT(old_size, 0u);
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_EQ(FileSize(log + ".1"), old_size) << "lines went on landing in the rotated file";
  }
  stop.store(true);
  load.join();
  EXPECT_EQ(failed.load(), 0);
  size_t lines = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        lines = Lines(log).size() + Lines(log + ".1").size() + Lines(log + ".2").size();
        return lines == static_cast<size_t>(done.load());
      },
      absl::Seconds(10)))
      << lines << " lines for " << done.load() << " connections";
  std::printf("logrotate twice under load: %d connections, %zu lines in 3 files\n", done.load(),
              lines);
}

// docs/configuration.md's migration example: the same three backends
// behind HAProxy's config and behind Gateway's; the same share per
// backend, the backup unused, and the same answer when two die.
TEST_F(InteropTest, MigrationExampleServesTheSameTrafficAsHaproxy) {
  if (!Executable(kHaproxy)) GTEST_SKIP() << "haproxy is missing (./bazelw installs it)";
  EchoServer s1(false, "1"), s3(false, "3");
  auto s2 = std::make_unique<EchoServer>(false, "2");
  int haproxy_port = FreePort(), gateway_port = FreePort();
  auto fill = [&](std::string text, int listen) {
    return absl::StrReplaceAll(text, {{"{{LISTEN}}", std::to_string(listen)},
                                      {"{{BACKEND1}}", std::to_string(s1.port())},
                                      {"{{BACKEND2}}", std::to_string(s2->port())},
                                      {"{{BACKEND3}}", std::to_string(s3.port())}});
  };
  auto haproxy =
      Haproxy(fill(ReadText(Runfile("docs/examples/haproxy-three-backends.cfg")), haproxy_port));
  auto gw = StartGateway(
      fill(ReadText(Runfile("docs/examples/gateway-three-backends.json")), gateway_port));
  ASSERT_TRUE(WaitListening(haproxy_port)) << haproxy->Stderr();
  absl::SleepFor(absl::Seconds(1));  // both have run their first checks
  auto spread = [&](int port, int n) {
    std::map<std::string, int> count;
    for (int i = 0; i < n; ++i) ++count[Visit(port, "127.0.0.1")];
    return count;
  };
  std::map<std::string, int> by_haproxy = spread(haproxy_port, 300);
  std::map<std::string, int> by_gateway = spread(gateway_port, 300);
  EXPECT_EQ(by_gateway["1"], 200);
  EXPECT_EQ(by_gateway["2"], 100);
  EXPECT_EQ(by_gateway.count("3"), 0u) << "the backup served while the primaries were up";
  EXPECT_NEAR(by_haproxy["1"], by_gateway["1"], 10);
  EXPECT_NEAR(by_haproxy["2"], by_gateway["2"], 10);
  EXPECT_EQ(by_haproxy.count("3"), 0u);
  EXPECT_EQ(by_haproxy.count(""), 0u) << "HAProxy failed connections";
  // api2 dies: both keep every client, on api1 only, after fall x inter.
  s2.reset();
  absl::SleepFor(absl::Seconds(3));
  std::map<std::string, int> haproxy_after = spread(haproxy_port, 60);
  std::map<std::string, int> gateway_after = spread(gateway_port, 60);
  EXPECT_EQ(gateway_after["1"], 60);
  EXPECT_EQ(haproxy_after["1"], 60);
  std::printf("300 connections: HAProxy 1:%d 2:%d 3:%d, Gateway 1:%d 2:%d 3:%d; after api2 died "
              "HAProxy 1:%d, Gateway 1:%d of 60\n",
              by_haproxy["1"], by_haproxy["2"], by_haproxy["3"], by_gateway["1"], by_gateway["2"],
              by_gateway["3"], haproxy_after["1"], gateway_after["1"]);
}

}  // namespace
}  // namespace gateway::testing
