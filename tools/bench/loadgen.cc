// loadgen: the benchmark load client. Single-threaded, epoll, loopback
// only, and bounded in both duration (--duration_s) and count
// (--max_connections, --streams, --concurrency, --rate).
//   --mode=bulk    --streams=N connections each send as fast as they can for
//                  the duration to an upstream in sink mode; reports MB/s
//                  (bytes accepted by the kernel minus what is still unsent
//                  in the client's socket buffers at the end)
//   --mode=rate    closed loop: --concurrency connections always in flight,
//                  each connect, send --request_bytes, read --reply_bytes
//                  until EOF, close; reports connections/s and failures
//   --mode=paced   open loop: --rate new connections per second, same
//                  exchange; reports connections/s and failures
//   --mode=idle    --idle_connections connections opened and held without
//                  a byte for --duration_s, then closed; says on stderr
//                  "idle: N connected" once all connects are done (a
//                  script measures the proxy's memory then); ok = those that
//                  connected and were still open at the end
// --buckets_csv=FILE writes successes and failures per 100 ms (rate and
// paced), for plotting replacements under load, and FILE.failures one line
// per failed connection (when it began and ended, why). Results go to stdout as
// one line of key=value pairs.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gateway/base/resources.h"
#include "gflags/gflags.h"
#include "tools/bench/loopback.h"

DEFINE_string(target, "", "Loopback address to connect to, e.g. 127.0.0.1:8080");
DEFINE_string(mode, "rate", "bulk, rate, paced or idle");
DEFINE_double(duration_s, 5, "How long to generate load (seconds)");
DEFINE_int32(streams, 1, "bulk: parallel streams");
DEFINE_int32(concurrency, 32, "rate: connections always in flight");
DEFINE_int32(idle_connections, 1000, "idle: connections to open and hold");
DEFINE_double(rate, 500, "paced: new connections per second");
DEFINE_int32(max_inflight, 4096, "paced: connections in flight at most (more count as failed)");
DEFINE_int64(max_connections, 2000000, "Start at most this many connections in all");
DEFINE_int32(request_bytes, 64, "rate/paced: request size");
DEFINE_int32(reply_bytes, 64, "rate/paced: expected reply size (then EOF)");
DEFINE_int32(timeout_ms, 3000, "rate/paced: a connection not done after this has failed");
DEFINE_string(buckets_csv, "",
              "rate/paced: write per-100ms successes and failures here, and each failed "
              "connection (began, ended, why) to this path + .failures");

namespace gateway::bench {
namespace {

constexpr char kTool[] = "loadgen";
constexpr int64_t kBucketNs = 100 * 1000 * 1000;
constexpr size_t kChunk = 256 * 1024;

// Why a connection failed; each is reported separately.
enum Failure { kConnect, kReset, kShort, kTimeout, kOverload, kFailureKinds };
constexpr const char* kFailureNames[] = {"connect", "reset", "short", "timeout", "overload"};

struct Totals {
  int64_t ok = 0;
  int64_t failed[kFailureKinds] = {};
  int64_t bytes = 0;
  int64_t Failed() const {
    int64_t sum = 0;
    for (int64_t f : failed) sum += f;
    return sum;
  }
};

// Successes and failures per 100 ms since the start.
class Buckets {
 public:
  explicit Buckets(int64_t start_ns) : start_ns_(start_ns) {}
  void Add(int64_t now_ns, bool ok) {
    size_t i = static_cast<size_t>(std::max<int64_t>(0, now_ns - start_ns_) / kBucketNs);
    if (i >= counts_.size()) counts_.resize(i + 1, {0, 0});
    ++(ok ? counts_[i].first : counts_[i].second);
  }
  // A failed connection: when it began and ended (NowNs), and why.
  void AddFailure(int64_t began_ns, int64_t ended_ns, Failure why) {
    failures_.push_back({began_ns, ended_ns, why});
  }
  bool WriteCsv(const std::string& path, int64_t start_unix_ms) const {
    if (!WriteFailures(path + ".failures", start_unix_ms)) return false;
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) return false;
    std::fprintf(f, "# start_unix_ms=%lld\nt_s,ok,failed\n", static_cast<long long>(start_unix_ms));
    for (size_t i = 0; i < counts_.size(); ++i) {
      std::fprintf(f, "%.1f,%lld,%lld\n", i * 0.1, static_cast<long long>(counts_[i].first),
                   static_cast<long long>(counts_[i].second));
    }
    return std::fclose(f) == 0;
  }

 private:
  struct FailureRecord {
    int64_t began_ns, ended_ns;
    Failure why;
  };
  // PATH.failures: one line per failed connection, in wall-clock ms, so a
  // script can tell the connections open at an event from those begun after.
  bool WriteFailures(const std::string& path, int64_t start_unix_ms) const {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) return false;
    auto unix_ms = [&](int64_t ns) { return static_cast<long long>(start_unix_ms + (ns - start_ns_) / 1000000); };
    std::fprintf(f, "began_unix_ms,ended_unix_ms,why\n");
    for (const FailureRecord& r : failures_) {
      std::fprintf(f, "%lld,%lld,%s\n", unix_ms(r.began_ns), unix_ms(r.ended_ns), kFailureNames[r.why]);
    }
    return std::fclose(f) == 0;
  }

  int64_t start_ns_;
  std::vector<std::pair<int64_t, int64_t>> counts_;
  std::vector<FailureRecord> failures_;
};

// A non-blocking socket with a connect to `target` started (the gateway's
// own StartConnect: TCP_NODELAY, like the gateway's upstream side); -1 on
// failure.
int ConnectTo(const SocketAddress& target) {
  absl::StatusOr<UniqueFd> fd = StartConnect(target);
  return fd.ok() ? fd->Release() : -1;
}

int SocketError(int fd) {
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  return error;
}

void SetEvents(int epoll_fd, int op, int fd, uint32_t events) {
  epoll_event event = {};
  event.events = events;
  event.data.fd = fd;
  epoll_ctl(epoll_fd, op, fd, &event);
}

// Starts `n` connects to `target`, each registered in `epoll_fd` for
// EPOLLOUT (a connect that completes or fails shows as writable); one that
// cannot even start counts as a failed connect.
std::vector<int> StartConnects(const SocketAddress& target, int n, int epoll_fd, Totals* totals) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ConnectTo(target);
    if (fd < 0) {
      ++totals->failed[kConnect];
      continue;
    }
    fds.push_back(fd);
    SetEvents(epoll_fd, EPOLL_CTL_ADD, fd, EPOLLOUT);
  }
  return fds;
}

// bulk: `streams` connections write as fast as the path takes it.
Totals RunBulk(const SocketAddress& target, int64_t duration_ns) {
  Totals totals;
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  std::vector<int> fds = StartConnects(target, FLAGS_streams, epoll_fd, &totals);
  std::string chunk(kChunk, 'b');
  std::unordered_map<int, bool> connected;
  int64_t end = NowNs() + duration_ns;
  epoll_event events[256];
  while (NowNs() < end && !fds.empty()) {
    int n = epoll_wait(epoll_fd, events, 256, 10);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (!connected[fd]) {
        if (SocketError(fd) != 0) {
          ++totals.failed[kConnect];
          close(fd);
          fds.erase(std::find(fds.begin(), fds.end(), fd));
          continue;
        }
        connected[fd] = true;
      }
      for (;;) {
        ssize_t w = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        if (w > 0) {
          totals.bytes += w;
          continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) {
          ++totals.failed[kReset];
          close(fd);
          fds.erase(std::find(fds.begin(), fds.end(), fd));
        }
        break;
      }
    }
  }
  for (int fd : fds) {
    int unsent = 0;
    if (ioctl(fd, SIOCOUTQ, &unsent) == 0) totals.bytes -= unsent;
    ++totals.ok;
    close(fd);
  }
  close(epoll_fd);
  return totals;
}

// idle: many connections that carry nothing, held open.
Totals RunIdle(const SocketAddress& target, int64_t duration_ns) {
  Totals totals;
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  std::vector<int> open = StartConnects(target, FLAGS_idle_connections, epoll_fd, &totals);
  int connecting = static_cast<int>(open.size());
  // Every connect either completes or fails within 10 s.
  const int64_t give_up = NowNs() + 10 * 1000000000LL;
  epoll_event events[256];
  while (connecting > 0 && NowNs() < give_up) {
    int n = epoll_wait(epoll_fd, events, 256, 100);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
      --connecting;
      if (SocketError(fd) != 0) {
        ++totals.failed[kConnect];
        close(fd);
        open.erase(std::find(open.begin(), open.end(), fd));
      }
    }
  }
  std::fprintf(stderr, "%s: idle: %zu connected, %lld failed%s; holding for %.1f s\n", kTool,
               open.size() - static_cast<size_t>(connecting), static_cast<long long>(totals.Failed()),
               connecting > 0 ? " (some still connecting)" : "", duration_ns / 1e9);
  std::fflush(stderr);
  absl::SleepFor(absl::Nanoseconds(duration_ns));
  for (int fd : open) {
    char byte;
    ssize_t r = recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      ++totals.failed[kReset];  // closed on us while idle
    } else {
      ++totals.ok;
    }
    close(fd);
  }
  close(epoll_fd);
  return totals;
}

// rate and paced: many short request/reply connections.
class ShortConnections {
 public:
  ShortConnections(const SocketAddress& target, Buckets* buckets)
      : target_(target), buckets_(buckets), epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
    request_.assign(static_cast<size_t>(FLAGS_request_bytes), 'q');
  }

  Totals Run(bool paced, int64_t start_ns, int64_t duration_ns) {
    const int64_t end = start_ns + duration_ns;
    const int64_t timeout_ns = static_cast<int64_t>(FLAGS_timeout_ms) * 1000000;
    const double interval_ns = paced ? 1e9 / FLAGS_rate : 0;
    int64_t scheduled = 0;  // paced: connections due so far
    int64_t last_expiry_scan = start_ns;
    epoll_event events[256];
    for (;;) {
      int64_t now = NowNs();
      bool generating = now < end && started_ < FLAGS_max_connections;
      if (generating && paced) {
        int64_t due = static_cast<int64_t>((now - start_ns) / interval_ns) + 1;
        for (; scheduled < due && started_ < FLAGS_max_connections; ++scheduled) {
          if (static_cast<int>(conns_.size()) < FLAGS_max_inflight) {
            Start(now);
          } else {
            Fail(now, kOverload);
            ++started_;
          }
        }
      } else if (generating) {
        while (static_cast<int>(conns_.size()) < FLAGS_concurrency &&
               started_ < FLAGS_max_connections) {
          Start(now);
        }
      }
      if (!generating && conns_.empty()) break;
      int wait_ms = 10;
      if (generating && paced) {
        int64_t next = start_ns + static_cast<int64_t>(scheduled * interval_ns);
        wait_ms = static_cast<int>(std::clamp<int64_t>((next - now) / 1000000, 0, 10));
      }
      int n = epoll_wait(epoll_fd_, events, 256, wait_ms);
      now = NowNs();
      for (int i = 0; i < n; ++i) Advance(events[i].data.fd, now);
      if (now - last_expiry_scan > 10 * 1000000) {
        ExpireOlderThan(now - timeout_ns, now);
        last_expiry_scan = now;
      }
    }
    close(epoll_fd_);
    return totals_;
  }

 private:
  enum class State { kConnecting, kReading };
  struct Conn {
    State state = State::kConnecting;
    int64_t started_ns = 0;
    int64_t received = 0;
  };

  void Start(int64_t now) {
    ++started_;
    int fd = ConnectTo(target_);
    if (fd < 0) return Fail(now, kConnect);
    conns_[fd] = Conn{State::kConnecting, now, 0};
    SetEvents(epoll_fd_, EPOLL_CTL_ADD, fd, EPOLLOUT);
  }

  void Advance(int fd, int64_t now) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    Conn& c = it->second;
    if (c.state == State::kConnecting) {
      int error = SocketError(fd);
      if (error != 0) return Finish(fd, now, error == ECONNREFUSED ? kConnect : kReset);
      // The request is small: it fits in an empty send buffer at once.
      ssize_t w = send(fd, request_.data(), request_.size(), MSG_NOSIGNAL);
      if (w != static_cast<ssize_t>(request_.size())) return Finish(fd, now, kReset);
      c.state = State::kReading;
      SetEvents(epoll_fd_, EPOLL_CTL_MOD, fd, EPOLLIN);
      return;
    }
    for (;;) {
      ssize_t r = read(fd, buffer_, sizeof buffer_);
      if (r > 0) {
        c.received += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) return;
      if (r < 0) return Finish(fd, now, kReset);
      return Finish(fd, now, c.received >= FLAGS_reply_bytes ? -1 : kShort);  // EOF
    }
  }

  void ExpireOlderThan(int64_t cutoff, int64_t now) {
    std::vector<int> expired;
    for (const auto& [fd, conn] : conns_) {
      if (conn.started_ns < cutoff) expired.push_back(fd);
    }
    for (int fd : expired) Finish(fd, now, kTimeout);
  }

  // Closes `fd`; `failure` < 0 means it succeeded.
  void Finish(int fd, int64_t now, int failure) {
    close(fd);
    auto it = conns_.find(fd);
    const int64_t began = it != conns_.end() ? it->second.started_ns : now;
    if (it != conns_.end()) conns_.erase(it);
    if (failure < 0) {
      ++totals_.ok;
      if (buckets_) buckets_->Add(now, true);
    } else {
      Fail(now, static_cast<Failure>(failure), began);
    }
  }

  // `began`: when the failed connection began (-1: now).
  void Fail(int64_t now, Failure failure, int64_t began = -1) {
    ++totals_.failed[failure];
    if (buckets_) {
      buckets_->Add(now, false);
      buckets_->AddFailure(began < 0 ? now : began, now, failure);
    }
  }

  const SocketAddress& target_;
  Buckets* buckets_;
  int epoll_fd_;
  std::string request_;
  std::unordered_map<int, Conn> conns_;
  int64_t started_ = 0;
  Totals totals_;
  char buffer_[16 * 1024];
};

std::string FormatResult(const Totals& t, double elapsed_s) {
  std::string line = absl::StrFormat(
      "mode=%s target=%s duration_s=%.2f ok=%d failed=%d", FLAGS_mode, FLAGS_target, elapsed_s,
      t.ok, t.Failed());
  for (int i = 0; i < kFailureKinds; ++i) {
    absl::StrAppendFormat(&line, " failed_%s=%d", kFailureNames[i], t.failed[i]);
  }
  if (FLAGS_mode == "bulk") {
    absl::StrAppendFormat(&line, " streams=%d bytes=%d mb_per_s=%.1f", FLAGS_streams, t.bytes,
                          t.bytes / elapsed_s / 1e6);
  } else if (FLAGS_mode == "idle") {
    absl::StrAppendFormat(&line, " idle_connections=%d", FLAGS_idle_connections);
  } else {
    absl::StrAppendFormat(&line, " conn_per_s=%.0f", t.ok / elapsed_s);
  }
  return line;
}

int Main() {
  if (FLAGS_mode != "bulk" && FLAGS_mode != "rate" && FLAGS_mode != "paced" &&
      FLAGS_mode != "idle") {
    DieUsage(kTool, "--mode must be bulk, rate, paced or idle, not '" + FLAGS_mode + "'");
  }
  if (FLAGS_target.empty()) DieUsage(kTool, "--target=127.0.0.1:PORT is required");
  absl::StatusOr<SocketAddress> target = ParseLoopbackAddress(FLAGS_target);
  if (!target.ok()) DieUsage(kTool, std::string(target.status().message()));
  CheckRange(kTool, "duration_s", FLAGS_duration_s, 0.1, 3600);  // the soaks run 10 min + warm-up
  CheckRange(kTool, "streams", FLAGS_streams, 1, 1024);
  CheckRange(kTool, "concurrency", FLAGS_concurrency, 1, 4096);
  CheckRange(kTool, "idle_connections", FLAGS_idle_connections, 1, 20000);
  CheckRange(kTool, "rate", FLAGS_rate, 1, 100000);
  CheckRange(kTool, "max_inflight", FLAGS_max_inflight, 1, 16384);
  CheckRange(kTool, "max_connections", FLAGS_max_connections, 1, 10000000);
  CheckRange(kTool, "request_bytes", FLAGS_request_bytes, 1, 4096);
  CheckRange(kTool, "reply_bytes", FLAGS_reply_bytes, 0, 1 << 20);
  CheckRange(kTool, "timeout_ms", FLAGS_timeout_ms, 10, 60000);
  if (!FLAGS_buckets_csv.empty() && (FLAGS_mode == "bulk" || FLAGS_mode == "idle")) {
    DieUsage(kTool, "--buckets_csv needs --mode=rate or --mode=paced");
  }
  signal(SIGPIPE, SIG_IGN);
  RaiseDescriptorLimit();  // 1,024 in flight or 8,000 idle need more than the usual 1,024

  const int64_t duration_ns = static_cast<int64_t>(FLAGS_duration_s * 1e9);
  const int64_t start_ns = NowNs();
  const int64_t start_unix_ms = absl::ToUnixMillis(absl::Now());
  Totals totals;
  Buckets buckets(start_ns);
  if (FLAGS_mode == "bulk") {
    totals = RunBulk(*target, duration_ns);
  } else if (FLAGS_mode == "idle") {
    totals = RunIdle(*target, duration_ns);
  } else {
    ShortConnections run(*target, FLAGS_buckets_csv.empty() ? nullptr : &buckets);
    totals = run.Run(FLAGS_mode == "paced", start_ns, duration_ns);
  }
  // Rates are per second of load generation, not of the final drain.
  double elapsed_s = std::min(NowNs() - start_ns, duration_ns) / 1e9;
  std::printf("%s\n", FormatResult(totals, elapsed_s).c_str());
  if (!FLAGS_buckets_csv.empty() && !buckets.WriteCsv(FLAGS_buckets_csv, start_unix_ms)) {
    std::fprintf(stderr, "%s: cannot write --buckets_csv=%s: %s\n", kTool,
                 FLAGS_buckets_csv.c_str(), std::strerror(errno));
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace gateway::bench

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "loadgen --target=127.0.0.1:PORT --mode=bulk|rate|paced [--duration_s=5] ...");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return gateway::bench::Main();
}
