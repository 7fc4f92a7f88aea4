// misbehave: the control-socket and admin clients an operator's worst day
// brings, for the hostile soak (tools/bench/hostile_soak.sh). Loopback
// and one unix socket only; bounded by --duration_s and --rate.
//
// Every 1/--rate seconds it starts the next of these, round robin:
//   control_never_reads  sends {"cmd":"status"} and never reads the reply
//                        (held open --hold_s, then closed)
//   control_follow_close sends {"cmd":"follow"}, reads the first event and
//                        closes
//   control_garbage      sends a line that is not JSON, then closes
//   admin_reset          sends half a request, then resets (SO_LINGER 0)
//   admin_trickle        sends a request one byte every 500 ms (held at
//                        most --hold_s; at most --max_trickles at once)
// and, every 250 ms, a probe: GET /healthz on the admin port, which must
// answer 200 within --probe_timeout_ms. Misbehaving clients connect from
// 127.0.0.2 (so per-address limits never hit the probe, as a supervisor's
// probe from another address would not be hit); the probe from 127.0.0.1.
// Prints one key=value line at the end; exits 1 if any probe failed.
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "tools/bench/loopback.h"

DEFINE_string(control_socket, "", "The gateway's control.sock");
DEFINE_string(admin, "", "The gateway's admin address, e.g. 127.0.0.1:9901");
DEFINE_double(duration_s, 60, "How long to misbehave (seconds)");
DEFINE_double(rate, 20, "Misbehaving clients started per second");
DEFINE_double(hold_s, 5, "How long a never-reading or trickling client is held open");
DEFINE_int32(max_trickles, 32, "Trickling admin clients open at once, at most");
DEFINE_int32(probe_timeout_ms, 1000, "A /healthz probe slower than this has failed");

namespace gateway::bench {
namespace {

constexpr char kTool[] = "misbehave";
constexpr int64_t kNsPerMs = 1000 * 1000;

enum Action {
  kControlNeverReads,
  kControlFollowClose,
  kControlGarbage,
  kAdminReset,
  kAdminTrickle,
  kActions
};
constexpr const char* kActionNames[] = {"control_never_reads", "control_follow_close",
                                        "control_garbage", "admin_reset", "admin_trickle"};

// A client held open until `close_at_ns`; a trickling one sends the next
// byte of `pending` every 500 ms.
struct Held {
  int fd;
  int64_t close_at_ns;
  std::string pending;
  int64_t next_byte_ns = 0;
};

int ConnectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    close(fd);
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A blocking TCP connection to the admin port from `source` (an IPv4
// loopback address); -1 on failure.
int ConnectTcp(const SocketAddress& target, const char* source) {
  int fd = socket(target.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (source != nullptr && target.family() == AF_INET) {
    sockaddr_in from = {};
    from.sin_family = AF_INET;
    inet_pton(AF_INET, source, &from.sin_addr);
    (void)bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from);
  }
  if (connect(fd, target.get(), target.length) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendText(int fd, const std::string& text) {
  return send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

void Reset(int fd) {
  linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

// GET /healthz; true when "200" came back within the timeout.
bool Probe(const SocketAddress& admin, int64_t* latency_ns) {
  int64_t start = NowNs();
  int fd = ConnectTcp(admin, nullptr);
  if (fd < 0) return false;
  bool ok = SendText(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string reply;
  int64_t deadline = start + FLAGS_probe_timeout_ms * kNsPerMs;
  while (ok && reply.find("\r\n") == std::string::npos) {
    int wait_ms = static_cast<int>((deadline - NowNs()) / kNsPerMs);
    pollfd p = {fd, POLLIN, 0};
    if (wait_ms <= 0 || poll(&p, 1, wait_ms) <= 0) {
      ok = false;
      break;
    }
    char buffer[512];
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) {
      ok = false;
      break;
    }
    reply.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  *latency_ns = NowNs() - start;
  return ok && reply.rfind("HTTP/1.1 200", 0) == 0;
}

int Run() {
  if (FLAGS_control_socket.empty() || FLAGS_admin.empty()) {
    DieUsage(kTool, "needs --control_socket and --admin");
  }
  CheckRange(kTool, "--duration_s", FLAGS_duration_s, 0.1, 3600);
  CheckRange(kTool, "--rate", FLAGS_rate, 0.1, 1000);
  CheckRange(kTool, "--hold_s", FLAGS_hold_s, 0, 60);
  CheckRange(kTool, "--max_trickles", FLAGS_max_trickles, 0, 1000);
  CheckRange(kTool, "--probe_timeout_ms", FLAGS_probe_timeout_ms, 10, 60000);
  absl::StatusOr<SocketAddress> admin = ParseLoopbackAddress(FLAGS_admin);
  if (!admin.ok()) DieUsage(kTool, std::string(admin.status().message()));

  int64_t started[kActions] = {};
  int64_t refused[kActions] = {};
  int64_t probes = 0, probe_failures = 0, probe_max_ns = 0;
  std::vector<int64_t> probe_ns;
  std::deque<Held> held;
  int trickles = 0;

  const int64_t start = NowNs();
  const int64_t end = start + static_cast<int64_t>(FLAGS_duration_s * 1e9);
  const int64_t step = static_cast<int64_t>(1e9 / FLAGS_rate);
  int64_t next_action = start, next_probe = start;
  int action = 0;
  const int64_t hold_ns = static_cast<int64_t>(FLAGS_hold_s * 1e9);
  const std::string request = "GET /status HTTP/1.1\r\nHost: soak\r\nX-Pad: trickle\r\n\r\n";

  while (NowNs() < end) {
    int64_t now = NowNs();
    if (now >= next_action) {
      next_action += step;
      Action a = static_cast<Action>(action++ % kActions);
      int fd = -1;
      switch (a) {
        case kControlNeverReads:
          fd = ConnectUnix(FLAGS_control_socket);
          if (fd >= 0 && SendText(fd, "{\"cmd\":\"status\"}\n")) {
            held.push_back({fd, now + hold_ns, "", 0});
            fd = -2;
          }
          break;
        case kControlFollowClose:
          fd = ConnectUnix(FLAGS_control_socket);
          if (fd >= 0 && SendText(fd, "{\"cmd\":\"follow\"}\n")) {
            // Read the "following" event, as gatewayctl stop does, then go.
            pollfd p = {fd, POLLIN, 0};
            char buffer[256];
            if (poll(&p, 1, 1000) == 1) (void)!read(fd, buffer, sizeof buffer);
            close(fd);
            fd = -2;
          }
          break;
        case kControlGarbage:
          fd = ConnectUnix(FLAGS_control_socket);
          if (fd >= 0 && SendText(fd, "\xff not json\n")) {
            close(fd);
            fd = -2;
          }
          break;
        case kAdminReset:
          fd = ConnectTcp(*admin, "127.0.0.2");
          if (fd >= 0 && SendText(fd, "GET /sta")) {
            Reset(fd);
            fd = -2;
          }
          break;
        case kAdminTrickle:
          if (trickles >= FLAGS_max_trickles) {
            fd = -2;
            --started[a];  // not started: the cap is ours, not the gateway's
            break;
          }
          fd = ConnectTcp(*admin, "127.0.0.2");
          if (fd >= 0) {
            held.push_back({fd, now + hold_ns, request, now});
            ++trickles;
            fd = -2;
          }
          break;
        case kActions:
          break;
      }
      ++started[a];
      if (fd != -2) {
        ++refused[a];
        if (fd >= 0) close(fd);
      }
    }
    // Trickle and expire held clients.
    for (auto it = held.begin(); it != held.end();) {
      if (now >= it->close_at_ns) {
        if (!it->pending.empty() || it->next_byte_ns != 0) --trickles;
        close(it->fd);
        it = held.erase(it);
        continue;
      }
      if (!it->pending.empty() && now >= it->next_byte_ns) {
        if (!SendText(it->fd, it->pending.substr(0, 1))) {
          it->pending.clear();  // the gateway closed it: fine, keep until expiry
        } else {
          it->pending.erase(0, 1);
        }
        it->next_byte_ns = now + 500 * kNsPerMs;
      }
      ++it;
    }
    if (now >= next_probe) {
      next_probe += 250 * kNsPerMs;
      int64_t latency = 0;
      ++probes;
      if (!Probe(*admin, &latency)) ++probe_failures;
      probe_ns.push_back(latency);
      probe_max_ns = std::max(probe_max_ns, latency);
    }
    usleep(2000);
  }
  for (Held& h : held) close(h.fd);

  std::sort(probe_ns.begin(), probe_ns.end());
  double p99_ms = probe_ns.empty() ? 0 : probe_ns[probe_ns.size() * 99 / 100] / 1e6;
  std::string line;
  for (int a = 0; a < kActions; ++a) {
    absl::StrAppend(&line, kActionNames[a], "=", started[a], " ", kActionNames[a],
                    "_connect_failed=", refused[a], " ");
  }
  absl::StrAppend(&line, "probes=", probes, " probe_failures=", probe_failures,
                  absl::StrFormat(" probe_p99_ms=%.2f probe_max_ms=%.2f", p99_ms,
                                  probe_max_ns / 1e6));
  std::printf("%s\n", line.c_str());
  return probe_failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace gateway::bench

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return gateway::bench::Run();
}
