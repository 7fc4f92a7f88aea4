// The systemd service watchdog (WatchdogSec=, sd_watchdog_enabled(3)): when
// the service manager asks for keep-alives (WATCHDOG_USEC, and WATCHDOG_PID
// naming this process when set), a thread sends WATCHDOG=1 at half the
// interval, as sd_watchdog_enabled(3) recommends. Started after READY=1;
// without WATCHDOG_USEC it does nothing.
#ifndef GATEWAY_SUPERVISION_WATCHDOG_H_
#define GATEWAY_SUPERVISION_WATCHDOG_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"
#include "gateway/supervision/sd_notify.h"

namespace gateway {

// How often to send WATCHDOG=1: half of WATCHDOG_USEC, or nothing when the
// watchdog is off, malformed, or meant for another process (WATCHDOG_PID,
// inherited by a child of the service, names someone else).
std::optional<absl::Duration> WatchdogPingInterval(const Environment& env, pid_t self);

class Watchdog {
 public:
  // Pings `notifier` every `interval` while `healthy` (when given) returns
  // true; an unhealthy process stops pinging so systemd restarts it.
  Watchdog(const SdNotifier& notifier, absl::Duration interval,
           std::function<bool()> healthy = nullptr);
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog();  // stops and joins the thread

  // A running watchdog when `env` asks for one for `self`, else null.
  static std::unique_ptr<Watchdog> StartIfRequested(const SdNotifier& notifier,
                                                    const Environment& env, pid_t self,
                                                    std::function<bool()> healthy = nullptr);

  absl::Duration interval() const { return interval_; }

 private:
  void Run();

  const SdNotifier& notifier_;
  const absl::Duration interval_;
  const std::function<bool()> healthy_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace gateway

#endif  // GATEWAY_SUPERVISION_WATCHDOG_H_
