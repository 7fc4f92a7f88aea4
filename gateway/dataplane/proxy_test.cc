// The relay's event loop in-process: what a black-box test cannot see
// (its epoll registrations).
#include "gateway/dataplane/proxy.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/base/sys.h"
#include "gateway/dataplane/routes.h"
#include "gateway/dataplane/telemetry.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

// Registrations in every epoll set of this process (the "tfd:" lines of
// /proc/self/fdinfo for each eventpoll descriptor).
int EpollRegistrations() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char target[64] = {};
    std::string link = absl::StrCat("/proc/self/fd/", entry->d_name);
    if (readlink(link.c_str(), target, sizeof target - 1) <= 0) continue;
    if (std::string(target) != "anon_inode:[eventpoll]") continue;
    std::ifstream info(absl::StrCat("/proc/self/fdinfo/", entry->d_name));
    std::string line;
    while (std::getline(info, line)) count += absl::StartsWith(line, "tfd:") ? 1 : 0;
  }
  closedir(dir);
  return count;
}

int LocalPort(int fd) {
  sockaddr_in address = {};
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

UniqueFd Connect(int port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  return fd;
}

// Polls `condition` for up to 5 s.
bool Eventually(const std::function<bool()>& condition) {
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

class ProxyLoopTest : public testing::Test {
 protected:
  void SetUp() override {
    upstream_ = UniqueFd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(upstream_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(listen(upstream_.get(), 16), 0);
    absl::StatusOr<std::vector<Route>> routes =
        ParseRouteFlag(absl::StrCat("127.0.0.1:0=127.0.0.1:", LocalPort(upstream_.get())));
    ASSERT_TRUE(routes.ok()) << routes.status();
    ASSERT_TRUE(proxy_.SetRoutes(*routes).ok());
    listen_port_ = LocalPort(proxy_.ListenerFds().at(0).second);
    loop_ = std::thread([this] { proxy_.RunUntil([this] { return quit_.load(); }); });
  }
  void TearDown() override {
    quit_ = true;
    proxy_.Post([] {});
    loop_.join();
  }

  Telemetry telemetry_{Telemetry::Identity()};
  Proxy proxy_{&telemetry_};
  UniqueFd upstream_;
  int listen_port_ = 0;
  std::atomic<bool> quit_{false};
  std::thread loop_;
};

// A child between fork and exec (a successor, a --check) holds copies of
// every descriptor, so close(2) alone leaves the epoll registration of a
// closed connection alive, pointing at freed memory: the next event on it
// crashed a worker ("pure virtual method called") during a replacement
// under load.
TEST_F(ProxyLoopTest, ClosedConnectionLeavesNoRegistrationWhileAForkedChildHoldsItsSockets) {
  int idle = EpollRegistrations();
  UniqueFd client = Connect(listen_port_);
  UniqueFd server(accept4(upstream_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server.valid());
  ASSERT_TRUE(Eventually([&] { return proxy_.active_connections() == 1; }));
  ASSERT_TRUE(Eventually([&] { return EpollRegistrations() == idle + 2; }));

  int hold[2];
  ASSERT_EQ(pipe2(hold, O_CLOEXEC), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // holds the gateway's descriptors until the pipe closes
    close(hold[1]);
    close(client.get());  // not the test's own ends of the connection
    close(server.get());
    char byte;
    (void)!read(hold[0], &byte, 1);
    _exit(0);
  }
  close(hold[0]);

  // Both ends go (a half-close alone keeps the relay open): the gateway
  // closes both of its sockets, whose descriptions the child still holds.
  client.Reset();
  (void)!write(server.get(), "x", 1);
  server.Reset();
  EXPECT_TRUE(Eventually([&] { return proxy_.active_connections() == 0; }));
  EXPECT_TRUE(Eventually([&] { return EpollRegistrations() == idle; }))
      << EpollRegistrations() << " registrations, " << idle << " when idle";
  absl::SleepFor(absl::Milliseconds(50));  // time for a stray event to arrive

  close(hold[1]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  // And the loop still relays.
  UniqueFd again = Connect(listen_port_);
  UniqueFd accepted(accept4(upstream_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted.valid());
  ASSERT_EQ(write(again.get(), "ping", 4), 4);
  char buffer[4];
  ASSERT_EQ(read(accepted.get(), buffer, sizeof buffer), 4);
}

// The gateway's own sockets of a relayed connection (not the test's ends):
// every TCP socket of this process whose local port is `listen_port` and
// that does not listen, or whose peer port is `upstream_port` and whose
// descriptor is not one of `theirs`.
std::vector<int> RelaySockets(int listen_port, int upstream_port, const std::vector<int>& theirs) {
  std::vector<int> found;
  for (int fd = 0; fd < 4096; ++fd) {
    if (std::find(theirs.begin(), theirs.end(), fd) != theirs.end()) continue;
    int listening = 0;
    socklen_t length = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || listening) continue;
    sockaddr_in peer = {};
    socklen_t peer_length = sizeof peer;
    bool to_upstream = getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0 &&
                       ntohs(peer.sin_port) == upstream_port;
    if (LocalPort(fd) == listen_port || to_upstream) found.push_back(fd);
  }
  return found;
}

// Both sides of the relay run without Nagle's delay; the client side gets
// it from the listening socket (set once, inherited by accept).
TEST_F(ProxyLoopTest, BothSidesOfARelayHaveTcpNodelay) {
  UniqueFd client = Connect(listen_port_);
  UniqueFd server(accept4(upstream_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server.valid());
  ASSERT_TRUE(Eventually([&] { return proxy_.active_connections() == 1; }));
  std::vector<int> relay =
      RelaySockets(listen_port_, LocalPort(upstream_.get()), {client.get(), server.get()});
  ASSERT_EQ(relay.size(), 2u) << "the gateway's client and upstream sockets";
  for (int fd : relay) {
    int nodelay = 0;
    socklen_t length = sizeof nodelay;
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &length), 0);
    EXPECT_EQ(nodelay, 1) << "fd " << fd << " (local port " << LocalPort(fd) << ")";
  }
}

}  // namespace
}  // namespace gateway
