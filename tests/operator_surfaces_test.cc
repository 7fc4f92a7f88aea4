// Black-box: the access log (--access_log, reopen on gatewayctl
// reopen-logs and SIGUSR1, a disk that cannot keep up) and the PROXY
// protocol (accept_proxy, send_proxy v1/v2) on the real binary. The real
// peers (nginx, HAProxy, logrotate) are in interop_test.cc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

std::vector<nlohmann::json> Lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return lines;
}

size_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

// One connection: sends `n` bytes, reads them back, closes. False on failure.
bool EchoThrough(int port, size_t n, unsigned seed = 1) {
  int fd = ConnectTo(port);
  if (fd < 0) return false;
  std::string data = RandomBytes(n, seed);
  bool ok = SendAll(fd, data) && RecvExactly(fd, n) == data;
  close(fd);
  return ok;
}

// An upstream that reports the PROXY header it received: it reads the
// first `header_bytes` (0: a v1 line up to CRLF), sends them back, then
// echoes.
class HeaderReporter {
 public:
  explicit HeaderReporter(size_t header_bytes = 0) : header_bytes_(header_bytes) {
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
        timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::string header;
        char ch;
        while ((header_bytes_ == 0 ? !absl::EndsWith(header, "\r\n")
                                   : header.size() < header_bytes_) &&
               header.size() < 300 && read(c, &ch, 1) == 1) {
          header.push_back(ch);
        }
        SendAll(c, header);
        char buffer[4096];
        for (ssize_t n; (n = read(c, buffer, sizeof buffer)) > 0;) {
          SendAll(c, std::string(buffer, static_cast<size_t>(n)));
        }
        close(c);
      }
    });
  }
  ~HeaderReporter() {
    stop_.store(true);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  size_t header_bytes_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class OperatorSurfacesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTempDir(TestName());
    log_ = dir_ + "/access.log";
  }
  std::unique_ptr<Gateway> Start(const std::string& config, std::vector<std::string> flags = {}) {
    std::ofstream(dir_ + "/gateway.json") << config;
    flags.push_back("--config=" + dir_ + "/gateway.json");
    auto gw = std::make_unique<Gateway>(TestName(), Gateway::Options{flags});
    EXPECT_TRUE(gw->WaitReady()) << gw->Log();
    return gw;
  }
  std::string Route(int listen, int upstream, const std::string& extra = "") {
    return absl::StrCat(R"({"routes": [{"name": "r", "listen": "127.0.0.1:)", listen,
                        R"(", "upstream": "127.0.0.1:)", upstream, "\"", extra, "}]}");
  }
  std::string Metrics(Gateway& gw) { return HttpGet(gw.AdminAddress(), "/metrics").body; }
  std::string dir_;
  std::string log_;
};

TEST_F(OperatorSurfacesTest, AccessLogLinesAreJsonAndTheirBytesAddUp) {
  EchoServer echo;
  int port = FreePort();
  auto gw = Start(Route(port, echo.port()), {"--access_log=" + log_});
  int64_t sent = 0;
  for (int i = 0; i < 1000; ++i) {
    size_t n = 1 + static_cast<size_t>(i * 37 % 5000);
    ASSERT_TRUE(EchoThrough(port, n, static_cast<unsigned>(i))) << i;
    sent += static_cast<int64_t>(n);
  }
  ASSERT_TRUE(WaitFor([&] { return Lines(log_).size() == 1000; }, absl::Seconds(10)))
      << Lines(log_).size();
  int64_t from_client = 0, to_client = 0;
  for (const nlohmann::json& line : Lines(log_)) {
    ASSERT_TRUE(line.is_object()) << "a line is not JSON";
    from_client += line["bytes_from_client"].get<int64_t>();
    to_client += line["bytes_to_client"].get<int64_t>();
    EXPECT_EQ(line["route"], "r");
    EXPECT_EQ(line["upstream"], absl::StrCat("127.0.0.1:", echo.port()));
    EXPECT_TRUE(absl::StartsWith(line["client"].get<std::string>(), "127.0.0.1:"));
    EXPECT_EQ(line["ended"], "client_closed") << line.dump();
    EXPECT_EQ(line["ended_by"], "client");
    EXPECT_EQ(line["retries"], 0);
    EXPECT_TRUE(line["time"].is_string() && line["duration_ms"].is_number());
  }
  EXPECT_EQ(from_client, sent);
  EXPECT_EQ(to_client, sent);
  std::string metrics = Metrics(*gw);
  EXPECT_TRUE(absl::StrContains(metrics, "gateway_access_log_lines_total{result=\"written\"} 1000"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(metrics, "gateway_access_log_lines_total{result=\"dropped\"} 0"));
}

TEST_F(OperatorSurfacesTest, RefusedClientsAreLoggedWithWhy) {
  auto dead = std::make_unique<EchoServer>();
  int dead_port = dead->port();
  dead.reset();
  int port = FreePort();
  auto gw = Start(Route(port, dead_port), {"--access_log=" + log_});
  EXPECT_FALSE(EchoThrough(port, 10));
  ASSERT_TRUE(WaitFor([&] { return Lines(log_).size() == 1; }, absl::Seconds(5)));
  nlohmann::json line = Lines(log_)[0];
  EXPECT_EQ(line["ended"], "connect_failed") << line.dump();
  EXPECT_EQ(line["upstream"], absl::StrCat("127.0.0.1:", dead_port));
  EXPECT_EQ(line["bytes_from_client"], 0);
}

// Rotation by rename + reopen, under load, both ways: no line is lost and
// none lands in the old file once the reopen returned (or was logged).
TEST_F(OperatorSurfacesTest, ReopenUnderLoadLosesNoLineAndLeavesNoneInTheOldFile) {
  EchoServer echo;
  int port = FreePort();
  auto gw = Start(Route(port, echo.port()), {"--access_log=" + log_});
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread load([&] {
    for (int i = 0; i < 20000 && !stop.load(); ++i) (EchoThrough(port, 100) ? ok : failed)++;
  });
  std::vector<std::string> files;
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(WaitFor([&] { return FileSize(log_) > 20000; }, absl::Seconds(10)));
    std::string rotated = absl::StrCat(log_, ".", round);
    ASSERT_EQ(rename(log_.c_str(), rotated.c_str()), 0);
    files.push_back(rotated);
    if (round % 2 == 0) {
      RunResult reopened = Gatewayctl({"reopen-logs", "--state_dir=" + gw->state_dir()});
      ASSERT_EQ(reopened.status.code, 0) << reopened.err;
    } else {
      std::string marker = "SIGUSR1: access log reopened";
      size_t before = 0;
      for (size_t at = gw->Log().find(marker); at != std::string::npos;
           at = gw->Log().find(marker, at + 1)) {
        ++before;
      }
      SignalFromSibling(gw->pid(), SIGUSR1);
      ASSERT_TRUE(WaitFor(
          [&] {
            size_t now = 0;
            std::string text = gw->Log();
            for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) {
              ++now;
            }
            return now > before;
          },
          absl::Seconds(5)));
    }
    size_t old_size = FileSize(rotated);
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_EQ(FileSize(rotated), old_size) << "a line landed in " << rotated << " after the reopen";
  }
  stop.store(true);
  load.join();
  files.push_back(log_);
  size_t total = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        total = 0;
        for (const std::string& f : files) total += Lines(f).size();
        return total == static_cast<size_t>(ok.load() + failed.load());
      },
      absl::Seconds(10)))
      << total << " lines for " << ok.load() << " connections";
  EXPECT_EQ(failed.load(), 0);
  for (const std::string& f : files) {
    for (const nlohmann::json& line : Lines(f)) ASSERT_TRUE(line.is_object()) << f;
  }
  EXPECT_TRUE(absl::StrContains(Metrics(*gw), "gateway_access_log_reopens_total 4"));
}

// A log that cannot keep up (a FIFO read at 2 KiB/s) drops lines and
// counts them; the relay runs as fast as with no access log.
TEST_F(OperatorSurfacesTest, ASlowAccessLogDropsLinesAndNeverSlowsTheRelay) {
  EchoServer echo;
  std::string fifo = dir_ + "/slow.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  std::atomic<bool> stop{false};
  std::thread slow([&] {
    char buffer[100];
    while (!stop.load()) {
      (void)!read(reader, buffer, sizeof buffer);
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  auto rate = [&](int port) {
    absl::Time start = absl::Now();
    for (int i = 0; i < 2000; ++i) EXPECT_TRUE(EchoThrough(port, 10));
    return 2000 / absl::ToDoubleSeconds(absl::Now() - start);
  };
  int plain_port = FreePort();
  double plain;
  {
    auto gw = Start(Route(plain_port, echo.port()));
    plain = rate(plain_port);
  }
  int port = FreePort();
  auto gw = Start(Route(port, echo.port()), {"--access_log=" + fifo, "--access_log_buffer_kb=16"});
  double logged = rate(port);
  std::string metrics = Metrics(*gw);
  EXPECT_FALSE(absl::StrContains(metrics, "gateway_access_log_lines_total{result=\"dropped\"} 0\n"))
      << metrics;
  std::printf("2000 connections: %.0f/s with no access log, %.0f/s logging to a FIFO read at "
              "2 KB/s\n",
              plain, logged);
  EXPECT_GT(logged, plain * 0.5) << "the slow log slowed the relay";
  stop.store(true);
  slow.join();
  close(reader);
}

TEST_F(OperatorSurfacesTest, AcceptProxyBalancesAndLogsByTheHeaderAddress) {
  EchoServer a(false, "a"), b(false, "b");
  int port = FreePort();
  auto gw = Start(absl::StrCat(
                      R"({"routes": [{"name": "r", "listen": "127.0.0.1:)", port,
                      R"(", "upstreams": ["127.0.0.1:)", a.port(), R"(", "127.0.0.1:)", b.port(),
                      R"("], "balance": "hash", "accept_proxy": true}]})"),
                  {"--access_log=" + log_});
  auto visit = [&](const std::string& header) {
    int fd = ConnectTo(port);
    std::string got;
    if (fd >= 0 && SendAll(fd, header + "x")) got = RecvExactly(fd, 2);  // greeting + echo
    if (fd >= 0) close(fd);
    return got;
  };
  // One proxied client address keeps one upstream, whatever the real one.
  std::string first = visit("PROXY TCP4 10.9.8.7 127.0.0.1 4242 80\r\n");
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1], 'x');
  for (int i = 0; i < 10; ++i) EXPECT_EQ(visit("PROXY TCP4 10.9.8.7 127.0.0.1 4242 80\r\n"), first);
  // Version 2, IPv6.
  std::string v2 = std::string("\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24", 16);
  v2 += std::string(15, '\0') + "\x05" + std::string(15, '\0') + "\x01" + "\x30\x39" + std::string("\x00\x50", 2);
  EXPECT_EQ(visit(v2).size(), 2u);
  // Many proxied clients spread over both upstreams.
  int to_a = 0;
  for (int i = 1; i <= 40; ++i) {
    to_a += visit(absl::StrCat("PROXY TCP4 10.0.0.", i, " 127.0.0.1 1000 80\r\n"))[0] == 'a';
  }
  EXPECT_GT(to_a, 5);
  EXPECT_LT(to_a, 35);
  ASSERT_TRUE(WaitFor([&] { return Lines(log_).size() == 52; }, absl::Seconds(5)));
  std::vector<nlohmann::json> lines = Lines(log_);
  EXPECT_EQ(lines[0]["client"], "10.9.8.7:4242") << lines[0].dump();
  EXPECT_EQ(lines[11]["client"], "[::5]:12345") << lines[11].dump();
  EXPECT_EQ(lines[0]["bytes_from_client"], 1) << "the header was counted as relayed bytes";
}

TEST_F(OperatorSurfacesTest, BadSlowAndOversizedProxyHeadersAreRefusedInTimeAndCounted) {
  EchoServer echo;
  int port = FreePort();
  auto gw = Start(Route(port, echo.port(),
                        R"(, "accept_proxy": true, "proxy_header_timeout": "500ms")"),
                  {"--access_log=" + log_});
  const std::pair<std::string, std::string> cases[] = {
      {"GET / HTTP/1.0\r\n\r\n", "not a header"},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "bad port"},
      {"PROXY TCP4 1.2.3.4", "truncated (then closed)"},
      {"PROXY ", "slow (nothing more)"},
      {"PROXY UNKNOWN " + std::string(200, 'z'), "oversized v1"},
      {std::string("\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", 16), "oversized v2"},
  };
  int n = 0;
  for (const auto& [bytes, what] : cases) {
    int fd = ConnectTo(port);
    ASSERT_GE(fd, 0);
    absl::Time start = absl::Now();
    ASSERT_TRUE(SendAll(fd, bytes)) << what;
    if (absl::StrContains(what, "truncated")) shutdown(fd, SHUT_WR);
    // Closed: an end of stream, or a reset (unread bytes were discarded).
    char buffer[256];
    ssize_t got;
    while ((got = read(fd, buffer, sizeof buffer)) > 0) {
    }
    const bool closed = got == 0 || errno == ECONNRESET;
    absl::Duration took = absl::Now() - start;
    close(fd);
    EXPECT_TRUE(closed) << what << ": " << std::strerror(errno);
    EXPECT_LT(took, absl::Milliseconds(1500)) << what << " was not refused within the timeout";
    ++n;
    EXPECT_TRUE(WaitFor(
        [&] {
          return absl::StrContains(Metrics(*gw), absl::StrCat(
                                                     "gateway_proxy_header_errors_total{route=\"r\"} ", n, "\n"));
        },
        absl::Seconds(3)))
        << what;
  }
  EXPECT_EQ(echo.accepted(), 0) << "a client without a good header reached the upstream";
  ASSERT_TRUE(WaitFor([&] { return Lines(log_).size() == 6; }, absl::Seconds(5)));
  for (const nlohmann::json& line : Lines(log_)) EXPECT_EQ(line["ended"], "proxy_header_error");
  // A good header still works afterwards, and the payload after it arrives.
  int fd = ConnectTo(port);
  ASSERT_TRUE(SendAll(fd, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello"));
  EXPECT_EQ(RecvExactly(fd, 5), "hello");
  close(fd);
}

// send_proxy v1 and v2: the upstream gets the client's address first, and
// a gateway with accept_proxy in between passes the original one on.
TEST_F(OperatorSurfacesTest, SendProxyV1AndV2CarryTheClientAddress) {
  HeaderReporter v1_reporter;
  int port = FreePort();
  auto gw = Start(Route(port, v1_reporter.port(), R"(, "send_proxy": "v1")"));
  int fd = ConnectFrom("127.0.0.7", port);
  ASSERT_GE(fd, 0);
  sockaddr_in own = {};
  socklen_t len = sizeof own;
  getsockname(fd, reinterpret_cast<sockaddr*>(&own), &len);
  ASSERT_TRUE(SendAll(fd, "ping"));
  std::string expected =
      absl::StrCat("PROXY TCP4 127.0.0.7 127.0.0.1 ", ntohs(own.sin_port), " ", port, "\r\n");
  EXPECT_EQ(RecvExactly(fd, expected.size()), expected);
  EXPECT_EQ(RecvExactly(fd, 4), "ping");
  close(fd);

  HeaderReporter v2_reporter(28);  // 16 + 12 for TCP over IPv4
  int front = FreePort();
  int back = FreePort();
  // front (send_proxy v2) -> back (accept_proxy, send_proxy v2) -> reporter
  std::ofstream(dir_ + "/back.json")
      << absl::StrCat(R"({"routes": [{"name": "back", "listen": "127.0.0.1:)", back,
                      R"(", "upstream": "127.0.0.1:)", v2_reporter.port(),
                      R"(", "accept_proxy": true, "send_proxy": "v2"}]})");
  auto back_gw = std::make_unique<Gateway>(TestName() + "-back",
                                      Gateway::Options{{"--admin=127.0.0.1:0",
                                                        "--config=" + dir_ + "/back.json"}});
  ASSERT_TRUE(back_gw->WaitReady()) << back_gw->Log();
  std::ofstream(dir_ + "/front.json")
      << absl::StrCat(R"({"routes": [{"name": "front", "listen": "127.0.0.1:)", front,
                      R"(", "upstream": "127.0.0.1:)", back, R"(", "send_proxy": "v2"}]})");
  auto front_gw = std::make_unique<Gateway>(TestName() + "-front",
                                            Gateway::Options{{"--admin=127.0.0.1:0",
                                                              "--config=" + dir_ + "/front.json"}});
  ASSERT_TRUE(front_gw->WaitReady()) << front_gw->Log();
  fd = ConnectFrom("127.0.0.9", front);
  ASSERT_GE(fd, 0);
  len = sizeof own;
  getsockname(fd, reinterpret_cast<sockaddr*>(&own), &len);
  ASSERT_TRUE(SendAll(fd, "pong"));
  std::string header = RecvExactly(fd, 28);
  ASSERT_EQ(header.size(), 28u);
  EXPECT_EQ(header.substr(0, 12), std::string("\r\n\r\n\0\r\nQUIT\n", 12));
  EXPECT_EQ(header[12], '\x21');  // v2, PROXY
  EXPECT_EQ(header[13], '\x11');  // TCP over IPv4
  EXPECT_EQ(header.substr(16, 4), std::string("\x7f\x00\x00\x09", 4)) << "not the original client";
  EXPECT_EQ(header.substr(20, 4), std::string("\x7f\x00\x00\x01", 4));
  uint16_t client_port = static_cast<uint16_t>((static_cast<unsigned char>(header[24]) << 8) |
                                               static_cast<unsigned char>(header[25]));
  uint16_t dest_port = static_cast<uint16_t>((static_cast<unsigned char>(header[26]) << 8) |
                                             static_cast<unsigned char>(header[27]));
  EXPECT_EQ(client_port, ntohs(own.sin_port));
  EXPECT_EQ(dest_port, front) << "the destination is the address the client connected to";
  EXPECT_EQ(RecvExactly(fd, 4), "pong");
  close(fd);
}

}  // namespace
}  // namespace gateway::testing
