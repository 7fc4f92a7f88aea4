// See watchdog.h.
#include "gateway/supervision/watchdog.h"

#include "absl/strings/numbers.h"
#include "glog/logging.h"

namespace gateway {

std::optional<absl::Duration> WatchdogPingInterval(const Environment& env, pid_t self) {
  auto usec = env.find("WATCHDOG_USEC");
  if (usec == env.end()) return std::nullopt;
  uint64_t microseconds = 0;
  if (!absl::SimpleAtoi(usec->second, &microseconds) || microseconds == 0) {
    LOG(WARNING) << "ignoring WATCHDOG_USEC='" << usec->second << "': not a positive number";
    return std::nullopt;
  }
  auto pid = env.find("WATCHDOG_PID");
  if (pid != env.end()) {
    int64_t watched = 0;
    if (!absl::SimpleAtoi(pid->second, &watched) || watched != self) {
      LOG(INFO) << "WATCHDOG_PID=" << pid->second << " is not this process (pid " << self
                << "); not sending watchdog keep-alives";
      return std::nullopt;
    }
  }
  return absl::Microseconds(microseconds) / 2;
}

Watchdog::Watchdog(const SdNotifier& notifier, absl::Duration interval,
                   std::function<bool()> healthy)
    : notifier_(notifier), interval_(interval), healthy_(std::move(healthy)) {
  thread_ = std::thread([this] { Run(); });
}

Watchdog::~Watchdog() {
  stop_.Notify();
  thread_.join();
}

std::unique_ptr<Watchdog> Watchdog::StartIfRequested(const SdNotifier& notifier,
                                                     const Environment& env, pid_t self,
                                                     std::function<bool()> healthy) {
  std::optional<absl::Duration> interval = WatchdogPingInterval(env, self);
  if (!interval || !notifier.enabled()) return nullptr;
  LOG(INFO) << "systemd watchdog on: WATCHDOG=1 every " << absl::FormatDuration(*interval);
  return std::make_unique<Watchdog>(notifier, *interval, std::move(healthy));
}

void Watchdog::Run() {
  bool warned = false;
  do {
    if (healthy_ && !healthy_()) {
      LOG_IF(WARNING, !warned) << "unhealthy: withholding watchdog keep-alives";
      warned = true;
      continue;
    }
    absl::Status sent = notifier_.Notify("WATCHDOG=1");
    if (!sent.ok() && !warned) {
      LOG(WARNING) << "watchdog keep-alive not sent: " << sent.message();
      warned = true;
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace gateway
