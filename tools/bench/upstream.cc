// upstream: the one TCP server every benchmark peer (Gateway, HAProxy,
// socat, a direct connection) is measured against, so that only the proxy
// in between differs. Single-threaded, level-triggered epoll, loopback only.
//   --mode=sink    read and discard everything (bulk throughput)
//   --mode=echo    send every byte back; half-close after the client's EOF
//   --mode=reply   read --request_bytes, send --reply_bytes, close
//                  (short-connection rate)
// --listen may name several addresses (comma-separated): one process, one
// thread serving them all, so a pool of upstreams costs the machine what one
// upstream does (tools/bench/pool_bench.sh compares the two).
// It stops on SIGTERM/SIGINT or after --max_lifetime_s, whichever is first.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/base/resources.h"
#include "gflags/gflags.h"
#include "tools/bench/loopback.h"

DEFINE_string(listen, "127.0.0.1:0",
              "Loopback address(es) to listen on, comma-separated (port 0: any free port)");
DEFINE_string(mode, "sink", "sink, echo or reply");
DEFINE_int32(request_bytes, 64, "reply mode: bytes to read before replying");
DEFINE_int32(reply_bytes, 64, "reply mode: bytes to send before closing");
DEFINE_double(max_lifetime_s, 3600, "Exit by itself after this many seconds");
DEFINE_string(port_file, "", "If set, write the bound port(s) here once listening, one a line");

namespace gateway::bench {
namespace {

constexpr char kTool[] = "upstream";
enum class Mode { kSink, kEcho, kReply };

struct Conn {
  int fd = -1;
  int64_t received = 0;
  std::string pending;  // echo/reply bytes not yet written
  bool read_eof = false;
};

class Upstream {
 public:
  Upstream(Mode mode, std::vector<int> listen_fds) : mode_(mode), listen_fds_(std::move(listen_fds)) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    for (int fd : listen_fds_) Add(fd, EPOLLIN);
    reply_.assign(static_cast<size_t>(FLAGS_reply_bytes), 'r');
  }

  // Serves until `stop_fd` (a signalfd) is readable or the lifetime ends.
  void Run(int stop_fd) {
    Add(stop_fd, EPOLLIN);
    int64_t end = NowNs() + static_cast<int64_t>(FLAGS_max_lifetime_s * 1e9);
    epoll_event events[256];
    while (NowNs() < end) {
      int n = epoll_wait(epoll_fd_, events, 256, 1000);
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == stop_fd) return;
        if (std::find(listen_fds_.begin(), listen_fds_.end(), fd) != listen_fds_.end()) {
          Accept(fd);
        } else {
          Serve(fd, events[i].events);
        }
      }
    }
  }

 private:
  void Add(int fd, uint32_t events) {
    epoll_event event = {};
    event.events = events;
    event.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
  }
  void Modify(int fd, uint32_t events) {
    epoll_event event = {};
    event.events = events;
    event.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &event);
  }

  void Accept(int listen_fd) {
    for (;;) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN, or EMFILE: retried on the next wake-up
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      conns_[fd].fd = fd;
      Add(fd, EPOLLIN);
    }
  }

  void Close(int fd) {
    close(fd);  // also leaves epoll
    conns_.erase(fd);
  }

  void Serve(int fd, uint32_t events) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    if (!c.pending.empty() && !Flush(c)) return Close(fd);
    if (c.pending.empty() && !c.read_eof) {
      if (!ReadAvailable(c)) return Close(fd);
    }
    if (!c.pending.empty()) return Modify(fd, EPOLLOUT);
    if (mode_ == Mode::kReply && c.received >= FLAGS_request_bytes) return Close(fd);
    if (c.read_eof) {
      if (mode_ == Mode::kEcho) shutdown(fd, SHUT_WR);
      return Close(fd);
    }
    Modify(fd, EPOLLIN);
  }

  // Reads until EAGAIN (or until a reply/echo is due). False on error.
  bool ReadAvailable(Conn& c) {
    for (;;) {
      ssize_t n = read(c.fd, buffer_, sizeof buffer_);
      if (n == 0) {
        c.read_eof = true;
        return true;
      }
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.received += n;
      if (mode_ == Mode::kEcho) {
        c.pending.assign(buffer_, static_cast<size_t>(n));
        return Flush(c);
      }
      if (mode_ == Mode::kReply && c.received >= FLAGS_request_bytes) {
        c.pending = reply_;
        return Flush(c);
      }
    }
  }

  // Writes what is pending; false on error. Leaves the rest pending.
  bool Flush(Conn& c) {
    while (!c.pending.empty()) {
      ssize_t n = write(c.fd, c.pending.data(), c.pending.size());
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.pending.erase(0, static_cast<size_t>(n));
    }
    return true;
  }

  Mode mode_;
  std::vector<int> listen_fds_;
  int epoll_fd_ = -1;
  std::string reply_;
  std::unordered_map<int, Conn> conns_;
  char buffer_[256 * 1024];
};

int Main() {
  Mode mode;
  if (FLAGS_mode == "sink") {
    mode = Mode::kSink;
  } else if (FLAGS_mode == "echo") {
    mode = Mode::kEcho;
  } else if (FLAGS_mode == "reply") {
    mode = Mode::kReply;
  } else {
    DieUsage(kTool, "--mode must be sink, echo or reply, not '" + FLAGS_mode + "'");
  }
  CheckRange(kTool, "request_bytes", FLAGS_request_bytes, 0, 1 << 20);
  CheckRange(kTool, "reply_bytes", FLAGS_reply_bytes, 0, 1 << 20);
  CheckRange(kTool, "max_lifetime_s", FLAGS_max_lifetime_s, 0.1, 86400);
  RaiseDescriptorLimit();  // tools/bench/idle_bench.sh holds 8,000 connections
  std::vector<UniqueFd> listeners;
  std::vector<int> listen_fds;
  std::string ports, names;
  for (absl::string_view text : absl::StrSplit(FLAGS_listen, ',')) {
    absl::StatusOr<SocketAddress> address = ParseLoopbackAddress(std::string(text));
    if (!address.ok()) DieUsage(kTool, std::string(address.status().message()));
    absl::StatusOr<UniqueFd> listener = BindListener(*address);
    if (!listener.ok()) {
      std::fprintf(stderr, "%s: %s\n", kTool, std::string(listener.status().message()).c_str());
      return 1;
    }
    absl::StatusOr<SocketAddress> bound = SocketAddress::OfSocket(listener->get());
    absl::StrAppend(&ports, bound.ok() ? bound->port() : 0, "\n");
    absl::StrAppend(&names, names.empty() ? "" : ", ", bound.ok() ? bound->ToString() : text);
    listen_fds.push_back(listener->get());
    listeners.push_back(std::move(*listener));
  }
  if (!FLAGS_port_file.empty()) {
    std::FILE* f = std::fopen(FLAGS_port_file.c_str(), "w");
    if (f == nullptr) DieUsage(kTool, "cannot write --port_file=" + FLAGS_port_file);
    std::fputs(ports.c_str(), f);
    std::fclose(f);
  }
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int stop_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  auto upstream = std::make_unique<Upstream>(mode, listen_fds);
  std::fprintf(stderr, "%s: %s mode on %s\n", kTool, FLAGS_mode.c_str(), names.c_str());
  upstream->Run(stop_fd);
  return 0;
}

}  // namespace
}  // namespace gateway::bench

int main(int argc, char** argv) {
  gflags::SetUsageMessage("upstream --listen=127.0.0.1:PORT --mode=sink|echo|reply");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return gateway::bench::Main();
}
