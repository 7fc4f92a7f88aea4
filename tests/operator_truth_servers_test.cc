// Black-box: the control socket and the admin server under hostile or
// broken clients (issue 13, "Operator truth under hostile conditions").
// Slow or silent clients must not stall the relay, the probes or the stop
// path; no reply is cut silently; closed clients leave no descriptor
// behind; gatewayctl never waits without a bound.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
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

int OpenFds(pid_t pid) {
  RunResult ls = RunCommand({"/bin/ls", absl::StrCat("/proc/", pid, "/fd")});
  return static_cast<int>(std::count(ls.out.begin(), ls.out.end(), '\n'));
}

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A connection to the gateway's control socket (through /proc/self/fd, so
// a long state directory path fits in sun_path); -1 when refused.
int ConnectControlSocket(const std::string& state_dir, bool nonblocking = false) {
  int dir = open(state_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  std::string path = absl::StrCat("/proc/self/fd/", dir, "/control.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  timeval timeout = {5, 0};  // bounds a blocking connect and send
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  close(dir);
  if (rc != 0 && !(nonblocking && errno == EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendLine(int fd, const std::string& line) {
  std::string data = line + "\n";
  return send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Reads one line (blocking, bounded by the socket's receive timeout).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (line.size() < 1 << 20 && read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

bool EchoesThrough(int port) {
  int fd = ConnectTo(port, false, absl::Seconds(3));
  bool ok = fd >= 0 && SendAll(fd, "ping") && RecvExactly(fd, 4) == "ping";
  if (fd >= 0) close(fd);
  return ok;
}

// A config of `count` routes whose listeners sit on distinct loopback
// addresses (127.10.x.y, one free port), plus one route "echo" to `echo`.
// Long names make the status reply several times a socket buffer.
std::string ManyRoutesConfig(const std::string& dir, int count, int echo_listen, int echo_upstream) {
  int port = FreePort();
  std::string text = R"({"routes": [)";
  for (int i = 0; i < count; ++i) {
    absl::StrAppend(&text, R"({"name": "route-)", i, "-", std::string(200, 'n'),
                    R"(", "listen": "127.10.)", i / 250, ".", i % 250 + 1, ":", port,
                    R"(", "upstream": "127.0.0.1:9"},)");
  }
  absl::StrAppend(&text, R"({"name": "echo", "listen": "127.0.0.1:)", echo_listen,
                  R"(", "upstream": "127.0.0.1:)", echo_upstream, R"("}]})");
  std::string path = dir + "/routes.json";
  std::ofstream(path) << text;
  return path;
}

int AdminPort(const Gateway& gw) {
  std::string address = gw.AdminAddress();
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) << address;
  return port;
}

// A non-blocking TCP connection to 127.0.0.1:`port` from `source` (any
// 127/8 address), so tests can play many client addresses.
int ConnectFrom(const std::string& source, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in from = {};
  from.sin_family = AF_INET;
  inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

// True while the server has not closed `fd` (no EOF, no reset).
bool StillOpen(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN));
}

// One GET from 127.0.0.1 that must be answered within `timeout`: the
// status code, or 0.
int Probe(int port, const std::string& path, absl::Duration timeout) {
  int fd = ConnectTo(port, false, timeout);
  if (fd < 0) return 0;
  timeval tv = {static_cast<time_t>(absl::ToInt64Seconds(timeout)), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SendAll(fd, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"));
  char buffer[64] = {};
  ssize_t n = recv(fd, buffer, sizeof buffer - 1, MSG_WAITALL);
  close(fd);
  int status = 0;
  if (n >= 12 && absl::StartsWith(buffer, "HTTP/1.")) {
    (void)absl::SimpleAtoi(std::string(buffer + 9, 3), &status);
  }
  return status;
}

// Item 3: a slowloris (one header line every 2.5 s, below the 3 s idle
// timeout) from many client addresses must not starve the probes.
TEST(OperatorTruthServersTest, ProbesAnswerWhileASlowlorisHoldsTheAdminServer) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  const int port = AdminPort(gw);
  constexpr int kAttackers = 260;
  std::atomic<bool> stop{false};
  std::atomic<int> reopened{0};
  std::thread attack([&] {
    std::vector<int> fds(kAttackers, -1);
    auto source = [](int i) { return absl::StrCat("127.0.0.", 2 + i / 10); };  // 10 per address
    absl::Time end = absl::Now() + absl::Seconds(40);  // bounded even if the test hangs
    for (int round = 0; !stop.load() && absl::Now() < end; ++round) {
      for (int i = 0; i < kAttackers; ++i) {
        if (fds[i] >= 0 && !StillOpen(fds[i])) {
          close(fds[i]);
          fds[i] = -1;
          ++reopened;
        }
        if (fds[i] < 0) {
          fds[i] = ConnectFrom(source(i), port);
          if (fds[i] >= 0) (void)!send(fds[i], "GET /status HTTP/1.1\r\n", 22, MSG_NOSIGNAL);
          continue;
        }
        std::string header = absl::StrCat("X-Slow-", round, ": 1\r\n");
        (void)!send(fds[i], header.data(), header.size(), MSG_NOSIGNAL);
      }
      for (int slice = 0; slice < 25 && !stop.load(); ++slice) absl::SleepFor(absl::Milliseconds(100));
    }
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  });
  absl::SleepFor(absl::Seconds(3));  // the attack is established
  int probes = 0, answered = 0;
  std::string failures;
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (absl::Now() < end) {
    for (const char* path : {"/healthz", "/readyz"}) {
      ++probes;
      int status = Probe(port, path, absl::Seconds(2));
      if (status == 200) {
        ++answered;
      } else {
        absl::StrAppend(&failures, path, " -> ", status, "; ");
      }
    }
    absl::SleepFor(absl::Milliseconds(300));
  }
  stop = true;
  attack.join();
  EXPECT_EQ(answered, probes) << "unanswered probes during the attack: " << failures;
  EXPECT_GT(reopened.load(), 0) << "the server never closed a slow connection";
  gw.child().Signal(SIGINT);
  EXPECT_EQ(gw.Wait().code, 0);
}

// Item 3: the whole request must arrive within the deadline, however
// often the client sends a byte.
TEST(OperatorTruthServersTest, AdminClosesARequestNotCompleteWithinTheDeadline) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  int fd = ConnectFrom("127.0.0.1", AdminPort(gw));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(WaitFor([&] { return send(fd, "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL) == 23; },
                      absl::Seconds(5)));
  absl::Time start = absl::Now();
  bool closed = false;
  for (int i = 0; i < 20 && !closed; ++i) {  // one header line every 500 ms, up to 10 s
    absl::SleepFor(absl::Milliseconds(500));
    closed = !StillOpen(fd) || send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) != 11;
  }
  absl::Duration took = absl::Now() - start;
  close(fd);
  EXPECT_TRUE(closed) << "a request trickling in for 10 s was never closed";
  EXPECT_GE(took, absl::Seconds(2)) << "closed before the documented 3 s deadline";
  EXPECT_EQ(Probe(AdminPort(gw), "/healthz", absl::Seconds(5)), 200);
}

// Item 3: one client address cannot take more than its share.
TEST(OperatorTruthServersTest, AdminLimitsConnectionsPerClientAddress) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  const int port = AdminPort(gw);
  std::vector<int> fds;
  for (int i = 0; i < 100; ++i) {
    int fd = ConnectFrom("127.0.0.2", port);
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  auto open_count = [&] {
    return static_cast<int>(std::count_if(fds.begin(), fds.end(), StillOpen));
  };
  // The extra ones are closed at accept, long before the request deadline.
  EXPECT_TRUE(WaitFor([&] { return open_count() <= 32; }, absl::Seconds(2)))
      << open_count() << " of 100 connections from one address are open";
  EXPECT_GT(open_count(), 0);
  EXPECT_EQ(Probe(port, "/healthz", absl::Seconds(5)), 200) << "another address is refused";
  for (int fd : fds) close(fd);
}

// Item 6: clients that ask for a large status and never read it must not
// stop the event loop (relay, control socket); they are dropped, logged once.
TEST(OperatorTruthServersTest, ControlClientsThatNeverReadDoNotStopTheRelay) {
  EchoServer echo;
  int echo_port = FreePort();
  std::string dir = FreshTempDir(TestName());
  Gateway::Options options;
  options.flags = {"--config=" + ManyRoutesConfig(dir, 1000, echo_port, echo.port())};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady(absl::Seconds(60))) << gw.Log();
  ASSERT_TRUE(EchoesThrough(echo_port));
  std::vector<int> silent;
  for (int i = 0; i < 4; ++i) {
    int fd = ConnectControlSocket(gw.state_dir());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendLine(fd, R"({"cmd":"status"})"));
    silent.push_back(fd);
  }
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_TRUE(EchoesThrough(echo_port)) << "the relay stopped behind a client that does not read";
  RunResult status = Gatewayctl({"status", "--json", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(status.status.code, 0) << status.err;
  // Past the per-client deadline each silent client is dropped, logged once.
  std::string dropped = absl::StrCat("control client pid ", getpid(), " dropped");
  EXPECT_TRUE(WaitFor([&] { return CountOf(gw.Log(), dropped) >= 4; }, absl::Seconds(20)))
      << gw.Log().substr(0, 4000);
  for (int fd : silent) {
    std::string all;
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) all.append(buffer, static_cast<size_t>(n));
    EXPECT_EQ(n, 0) << "the dropped client's connection is closed";
    close(fd);
  }
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(CountOf(gw.Log(), dropped), 4);
  EXPECT_TRUE(EchoesThrough(echo_port));
  gw.child().Signal(SIGINT);
  EXPECT_EQ(gw.Wait(absl::Seconds(60)).code, 0);
}

// Item 11: a status reply far over 16 KiB arrives whole.
TEST(OperatorTruthServersTest, StatusListsAThousandRoutes) {
  EchoServer echo;
  std::string dir = FreshTempDir(TestName());
  Gateway::Options options;
  options.flags = {"--config=" + ManyRoutesConfig(dir, 1000, FreePort(), echo.port())};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady(absl::Seconds(60))) << gw.Log();
  RunResult status = Gatewayctl({"status", "--json", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(status.status.code, 0) << status.err;
  nlohmann::json j = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << status.out.substr(0, 2000);
  EXPECT_TRUE(j["instance"]["routes"].is_array()) << status.out.substr(0, 2000);
  EXPECT_EQ(j["instance"]["routes"].size(), 1001u);
  RunResult text = Gatewayctl({"status", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(text.status.code, 0) << text.err;
  EXPECT_EQ(CountOf(text.out, "  route "), 1001);
  gw.child().Signal(SIGINT);
  EXPECT_EQ(gw.Wait(absl::Seconds(60)).code, 0);
}

// Item 12: followers that go away are noticed and their descriptors closed.
TEST(OperatorTruthServersTest, FollowersThatDisconnectLeaveNoDescriptorsBehind) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  const int before = OpenFds(gw.pid());
  for (int i = 0; i < 1000; ++i) {
    int fd = ConnectControlSocket(gw.state_dir());
    ASSERT_GE(fd, 0) << "client " << i;
    ASSERT_TRUE(SendLine(fd, R"({"cmd":"follow"})"));
    ASSERT_TRUE(absl::StrContains(ReadLine(fd), "following")) << "client " << i;
    close(fd);
  }
  int after = 0;
  EXPECT_TRUE(WaitFor([&] { return (after = OpenFds(gw.pid())) <= before + 2; }, absl::Seconds(10)))
      << "descriptors: " << before << " before 1000 followers, " << after << " after";
  gw.child().Signal(SIGINT);
  EXPECT_EQ(gw.Wait().code, 0);
}

// Item 12: admin connections reset in the middle of a request.
TEST(OperatorTruthServersTest, AdminConnectionsResetMidRequestLeaveNoDescriptorsBehind) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  const int port = AdminPort(gw);
  const int before = OpenFds(gw.pid());
  for (int i = 0; i < 1000; ++i) {
    int fd = ConnectTo(port);
    ASSERT_GE(fd, 0) << "client " << i;
    SendAll(fd, "GET /status HTTP/1.1\r\nHost: x\r\n");
    linger reset = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);  // RST
  }
  int after = 0;
  EXPECT_TRUE(WaitFor([&] { return (after = OpenFds(gw.pid())) <= before + 2; }, absl::Seconds(10)))
      << "descriptors: " << before << " before 1000 reset admin connections, " << after << " after";
  EXPECT_EQ(Probe(port, "/healthz", absl::Seconds(5)), 200);
  gw.child().Signal(SIGINT);
  EXPECT_EQ(gw.Wait().code, 0);
}

// The promise: gatewayctl status against a stopped gateway says it did not
// answer, within its documented bound, and fails.
TEST(OperatorTruthServersTest, StatusOfAStoppedGatewaySaysItDidNotAnswer) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  gw.child().Signal(SIGSTOP);
  absl::Time start = absl::Now();
  RunResult status = Gatewayctl({"status", "--state_dir=" + gw.state_dir()});
  absl::Duration took = absl::Now() - start;
  RunResult json = Gatewayctl({"status", "--json", "--state_dir=" + gw.state_dir()});
  gw.child().Signal(SIGCONT);
  EXPECT_FALSE(status.status.timed_out);
  EXPECT_EQ(status.status.code, 1) << status.out << status.err;
  EXPECT_LT(took, absl::Seconds(10));
  EXPECT_EQ(CountOf(status.err, "\n"), 1) << status.err;
  EXPECT_TRUE(absl::StrContains(status.err, absl::StrCat("gatewayctl: gateway pid ", gw.pid(),
                                                         " did not answer")))
      << status.err;
  EXPECT_EQ(json.status.code, 1) << json.err;
  nlohmann::json j = nlohmann::json::parse(json.out, nullptr, false);
  EXPECT_EQ(j["answering"], false) << json.out;
  EXPECT_EQ(j["running"], true) << json.out;
  RunResult again = Gatewayctl({"status", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(again.status.code, 0) << "after SIGCONT: " << again.err;
  gw.child().Signal(SIGINT);
  EXPECT_EQ(gw.Wait().code, 0);
}

// The promise: with the control socket's backlog full (a stopped gateway
// accepts nothing), connecting is bounded too: status, replace and stop
// all give up with a non-zero status instead of hanging.
TEST(OperatorTruthServersTest, CommandsGiveUpWhenTheControlSocketBacklogIsFull) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  gw.child().Signal(SIGSTOP);
  std::vector<int> fillers;
  for (int i = 0; i < 64; ++i) {
    int fd = ConnectControlSocket(gw.state_dir(), /*nonblocking=*/true);
    if (fd >= 0) fillers.push_back(fd);
  }
  ASSERT_GT(fillers.size(), 0u);
  absl::Time start = absl::Now();
  RunResult status = Gatewayctl({"status", "--state_dir=" + gw.state_dir()});
  EXPECT_FALSE(status.status.timed_out) << "status hung on a full backlog";
  EXPECT_EQ(status.status.code, 1) << status.err;
  EXPECT_TRUE(absl::StrContains(status.err, "did not answer")) << status.err;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  RunResult replace = Gatewayctl({"replace", "--timeout=2s", "--state_dir=" + gw.state_dir()});
  EXPECT_FALSE(replace.status.timed_out) << "replace hung on a full backlog";
  EXPECT_NE(replace.status.code, 0);
  EXPECT_EQ(CountOf(replace.err, "\n"), 1) << replace.err;
  RunResult stop = Gatewayctl({"stop", "--timeout=1s", "--state_dir=" + gw.state_dir()});
  EXPECT_FALSE(stop.status.timed_out) << "stop hung on a full backlog";
  EXPECT_NE(stop.status.code, 0) << stop.err;
  for (int fd : fillers) close(fd);
  ExitStatus exit = gw.Wait();
  EXPECT_EQ(exit.signal, SIGKILL) << exit.Describe();
}

}  // namespace
}  // namespace gateway::testing
