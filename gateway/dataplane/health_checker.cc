// See health_checker.h.
#include "gateway/dataplane/health_checker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/net.h"
#include "glog/logging.h"

namespace gateway {
namespace {

// One check in flight.
struct Probe {
  UpstreamPool* pool;
  UpstreamState* upstream;
  HealthCheck check;
  UniqueFd fd;
  absl::Time started;
  absl::Time deadline;
  bool connected = false;
  std::string to_send;
  std::string reply;
};

bool WantsReply(const HealthCheck& check) {
  return !check.http_path.empty() || !check.expect.empty();
}

std::string Printable(absl::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes.substr(0, 48)) {
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace

std::string HttpCheckRequest(const HealthCheck& check, const SocketAddress& upstream) {
  std::string host = check.http_host.empty() ? upstream.ToString() : check.http_host;
  return absl::StrCat("GET ", check.http_path, " HTTP/1.0\r\nHost: ", host,
                      "\r\nUser-Agent: gateway-health-check\r\nConnection: close\r\n\r\n");
}

std::optional<std::string> JudgeCheckReply(const HealthCheck& check, absl::string_view reply,
                                           bool closed) {
  if (!check.http_path.empty()) {
    size_t eol = reply.find("\r\n");
    if (eol == absl::string_view::npos) {
      if (!closed && reply.size() < kMaxCheckReply) return std::nullopt;
      return absl::StrCat("no HTTP status line in the reply ('", Printable(reply), "')");
    }
    // "HTTP/1.x NNN reason"
    absl::string_view line = reply.substr(0, eol);
    int status = 0;
    if (!absl::StartsWith(line, "HTTP/1.") || line.size() < 12 || line[8] != ' ' ||
        !absl::SimpleAtoi(line.substr(9, 3), &status)) {
      return absl::StrCat("bad HTTP status line '", Printable(line), "'");
    }
    if (status < check.status_min || status > check.status_max) {
      return absl::StrCat("HTTP status ", status, " (expected ", check.status_min, "-",
                          check.status_max, ")");
    }
    return std::string();
  }
  if (check.expect.empty()) return std::string();
  if (absl::StrContains(reply, check.expect)) return std::string();
  if (!closed && reply.size() < kMaxCheckReply) return std::nullopt;
  return absl::StrCat(closed ? "closed" : "replied", " without '", Printable(check.expect),
                      "' (got '", Printable(reply), "')");
}

HealthChecker::HealthChecker(std::function<std::vector<UpstreamPool*>()> pools)
    : pools_(std::move(pools)) {}

HealthChecker::~HealthChecker() { Stop(); }

absl::Status HealthChecker::Start() {
  wake_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return ErrnoStatus(errno, "health checker eventfd");
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void HealthChecker::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof one);
  thread_.join();
}

void HealthChecker::Run() {
  // When each upstream is due next; kept by address of its state (stable).
  std::map<UpstreamState*, absl::Time> due;
  // A check that found the upstream changing state (CheckDone says so):
  // the next one is due fast_interval after this one began.
  auto confirm_sooner = [&due](UpstreamState* upstream, absl::Time began, const HealthCheck& check) {
    auto it = due.find(upstream);
    if (it != due.end()) it->second = std::min(it->second, began + check.fast_interval);
  };
  std::vector<Probe> probes;
  while (!stopping_.load()) {
    absl::Time now = absl::Now();
    absl::Time wake_at = now + absl::Seconds(1);  // new pools show up within a second
    // Start the checks that are due.
    std::map<UpstreamState*, bool> current;
    for (UpstreamPool* pool : pools_()) {
      std::vector<CheckTarget> targets = pool->CheckTargets();
      for (size_t i = 0; i < targets.size(); ++i) {
        UpstreamState* upstream = targets[i].upstream;
        const HealthCheck& check = targets[i].check;
        current[upstream] = true;
        auto it = due.find(upstream);
        if (it == due.end()) {
          // First sight: the first at once, the rest of the pool spread
          // over a tenth of the interval.
          int64_t n = static_cast<int64_t>(targets.size());
          it = due.emplace(upstream, now + check.interval / 10 * static_cast<int64_t>(i) / n).first;
        }
        bool in_flight = std::any_of(probes.begin(), probes.end(),
                                     [&](const Probe& p) { return p.upstream == upstream; });
        if (in_flight) continue;
        if (it->second > now) {
          wake_at = std::min(wake_at, it->second);
          continue;
        }
        it->second = now + check.interval;
        wake_at = std::min(wake_at, it->second);
        probes_.fetch_add(1);
        Probe probe{pool, upstream, check, UniqueFd(), now, now + check.timeout};
        absl::StatusOr<UniqueFd> fd = StartConnect(upstream->address);
        if (!fd.ok()) {
          if (pool->CheckDone(upstream, absl::ZeroDuration(),
                              absl::StrCat("connect: ", fd.status().message()))) {
            confirm_sooner(upstream, now, check);
          }
          continue;
        }
        probe.fd = std::move(*fd);
        probe.to_send = !check.http_path.empty() ? HttpCheckRequest(check, upstream->address)
                                                 : check.send;
        probes.push_back(std::move(probe));
      }
    }
    for (auto it = due.begin(); it != due.end();) {
      it = current.count(it->first) ? std::next(it) : due.erase(it);
    }
    // Wait for the probes in flight (and Stop()).
    std::vector<pollfd> fds;
    fds.push_back({wake_.get(), POLLIN, 0});
    for (const Probe& probe : probes) {
      short events = !probe.connected || !probe.to_send.empty() ? POLLOUT : POLLIN;
      fds.push_back({probe.fd.get(), events, 0});
      wake_at = std::min(wake_at, probe.deadline);
    }
    absl::Duration wait = absl::Ceil(wake_at - absl::Now(), absl::Milliseconds(1));
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(wait), 0, 1000));
    int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) PLOG(FATAL) << "health checker: poll";
    if (stopping_.load()) break;
    now = absl::Now();
    std::vector<Probe> still;
    for (size_t i = 0; i < probes.size(); ++i) {
      Probe& probe = probes[i];
      const short revents = ready > 0 ? fds[i + 1].revents : 0;
      std::optional<std::string> verdict;
      if (revents != 0 && !probe.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(probe.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          verdict = absl::StrCat("connect: ", std::strerror(err));
        } else {
          probe.connected = true;
          if (probe.to_send.empty() && !WantsReply(probe.check)) verdict = std::string();
        }
      } else if (revents != 0 && !probe.to_send.empty()) {
        ssize_t n = send(probe.fd.get(), probe.to_send.data(), probe.to_send.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          verdict = absl::StrCat("send: ", std::strerror(errno));
        } else if (n > 0) {
          probe.to_send.erase(0, static_cast<size_t>(n));
          if (probe.to_send.empty() && !WantsReply(probe.check)) verdict = std::string();
        }
      } else if (revents != 0) {
        char buffer[1024];
        size_t room = std::min(sizeof buffer, kMaxCheckReply - probe.reply.size());
        ssize_t n = recv(probe.fd.get(), buffer, room, 0);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
          verdict = absl::StrCat("read: ", std::strerror(errno));
        } else if (n >= 0) {
          probe.reply.append(buffer, static_cast<size_t>(n));
          verdict = JudgeCheckReply(probe.check, probe.reply, n == 0);
        }
      }
      if (!verdict && now >= probe.deadline) {
        std::string what = !probe.connected          ? "no connection"
                           : !probe.to_send.empty()  ? "could not send the check"
                           : probe.reply.empty()     ? "no reply"
                                                     : absl::StrCat("replied '", Printable(probe.reply),
                                                                    "', not what was expected,");
        verdict = absl::StrCat(what, " within ", absl::FormatDuration(probe.check.timeout));
      }
      if (verdict) {
        if (probe.pool->CheckDone(probe.upstream, now - probe.started, *verdict)) {
          confirm_sooner(probe.upstream, probe.started, probe.check);
        }
        continue;  // its socket closes here
      }
      still.push_back(std::move(probe));
    }
    probes = std::move(still);
  }
}

}  // namespace gateway
