// See net_harness.h.
#include "tests/harness/net_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gateway::testing {
namespace {

int MakeSocket(bool ipv6, int port, sockaddr_storage* addr, socklen_t* len) {
  std::memset(addr, 0, sizeof *addr);
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_loopback;
    *len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *a;
  }
  return socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

int BoundPort(int fd) {
  sockaddr_storage addr;
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                    : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

}  // namespace

std::vector<int> FreePorts(int n, bool ipv6) {
  // Each socket stays bound until all are chosen, so no two are the same.
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    sockaddr_storage addr;
    socklen_t len;
    int fd = MakeSocket(ipv6, 0, &addr, &len);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
    ports.push_back(BoundPort(fd));
    fds.push_back(fd);
  }
  for (int fd : fds) close(fd);
  return ports;
}

int FreePortOutsideEphemeralRange(bool ipv6) {
  int low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &low) != 1) low = 32768;
    std::fclose(f);
  }
  std::mt19937 random(std::random_device{}());
  const int from = std::max(1024, low - 20000);
  for (int attempt = 0; attempt < 1000 && from < low; ++attempt) {
    int port = std::uniform_int_distribution<int>(from, low - 1)(random);
    sockaddr_storage addr;
    socklen_t len;
    int fd = MakeSocket(ipv6, port, &addr, &len);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    close(fd);
    if (free) return port;
  }
  return FreePort(ipv6);  // no room below the range: the best there is
}

int FreePort(bool ipv6) {
  sockaddr_storage addr;
  socklen_t len;
  int fd = MakeSocket(ipv6, 0, &addr, &len);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  int port = BoundPort(fd);
  close(fd);
  return port;
}

EchoServer::EchoServer(bool ipv6, std::string greeting, int port)
    : greeting_(std::move(greeting)) {
  sockaddr_storage addr;
  socklen_t len;
  listen_fd_ = MakeSocket(ipv6, port, &addr, &len);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // A requested port is retried for a second (a socket of ours may still
  // be closing on it), then the test dies loudly: a server restarted "on
  // its port" must never listen somewhere else.
  for (int attempt = 0; bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0; ++attempt) {
    if (port == 0 || attempt == 100) {
      std::fprintf(stderr, "EchoServer: cannot bind port %d: %s\n", port, std::strerror(errno));
      std::abort();
    }
    usleep(10000);
  }
  listen(listen_fd_, 1024);
  port_ = BoundPort(listen_fd_);
  acceptor_ = std::thread([this] {
    // Stops within 50 ms also while connections keep coming.
    while (!stopping_.load()) {
      pollfd p = {listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      accepted_.fetch_add(1);
      JoinFinishedWorkers();
      auto done = std::make_shared<std::atomic<bool>>(false);
      workers_.push_back({std::thread([this, fd, done] {
                            Serve(fd);
                            done->store(true);
                          }),
                          done});
    }
  });
}

void EchoServer::Serve(int fd) {
  timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (!greeting_.empty()) SendAll(fd, greeting_);
  char buffer[65536];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    if (!SendAll(fd, std::string(buffer, static_cast<size_t>(n)))) break;
  }
  shutdown(fd, SHUT_WR);
  // Wait for the other side to finish before closing, so no RST is sent.
  while (read(fd, buffer, sizeof buffer) > 0) {
  }
  close(fd);
}

EchoServer::~EchoServer() {
  stopping_.store(true);
  acceptor_.join();
  close(listen_fd_);
  for (Worker& worker : workers_) worker.thread.join();
}

void EchoServer::JoinFinishedWorkers() {
  auto finished = std::partition(workers_.begin(), workers_.end(),
                                 [](const Worker& w) { return !w.done->load(); });
  for (auto it = finished; it != workers_.end(); ++it) it->thread.join();
  workers_.erase(finished, workers_.end());
}

int ConnectTo(int port, bool ipv6, absl::Duration timeout) {
  sockaddr_storage addr;
  socklen_t len;
  int fd = MakeSocket(ipv6, port, &addr, &len);
  timeval tv = {static_cast<time_t>(absl::ToInt64Seconds(timeout)),
                static_cast<suseconds_t>(absl::ToInt64Microseconds(timeout) % 1000000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int ConnectFrom(const std::string& source, int port, absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv = {static_cast<time_t>(absl::ToInt64Seconds(timeout)),
                static_cast<suseconds_t>(absl::ToInt64Microseconds(timeout) % 1000000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in from = {};
  from.sin_family = AF_INET;
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1 ||
      bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string RecvExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, out.data() + got, n - got);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      break;
    }
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

std::string RecvUntilEof(int fd, bool* eof) {
  std::string out;
  char buffer[65536];
  for (;;) {
    ssize_t r = read(fd, buffer, sizeof buffer);
    if (r == 0) {
      if (eof) *eof = true;
      return out;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (eof) *eof = false;
      return out;
    }
    out.append(buffer, static_cast<size_t>(r));
  }
}

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

HttpReply HttpGet(const std::string& address, const std::string& path) {
  HttpReply reply;
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return reply;
  }
  int fd = ConnectTo(port, address[0] == '[', absl::Seconds(5));
  if (fd < 0) return reply;
  SendAll(fd, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
  std::string response = RecvUntilEof(fd);
  close(fd);
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return reply;
  absl::SimpleAtoi(response.substr(9, 3), &reply.status);
  size_t body = response.find("\r\n\r\n");
  if (body != std::string::npos) reply.body = response.substr(body + 4);
  return reply;
}

}  // namespace gateway::testing
