// Helpers of the detector-facing types; see stop_context.h.
#include "gateway/stop/stop_context.h"

#include <signal.h>

#include "absl/strings/str_cat.h"

namespace gateway {

absl::string_view StopClassName(StopClass stop_class) {
  switch (stop_class) {
    case StopClass::kTakeover:
      return "takeover";
    case StopClass::kPlanned:
      return "planned";
    case StopClass::kUnexpected:
      return "unexpected";
  }
  return "unexpected";
}

std::optional<StopClass> ParseStopClass(absl::string_view name) {
  for (StopClass c : {StopClass::kTakeover, StopClass::kPlanned, StopClass::kUnexpected}) {
    if (StopClassName(c) == name) return c;
  }
  return std::nullopt;
}

absl::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kStarting:
      return "starting";
    case Phase::kServing:
      return "serving";
    case Phase::kDraining:
      return "draining";
  }
  return "serving";
}

bool SignalInfo::SentByProcess() const {
  return code == SI_USER || code == SI_QUEUE || code == SI_TKILL;
}

std::optional<std::string> StopContext::Env(const std::string& name) const {
  auto it = environment.find(name);
  if (it == environment.end()) return std::nullopt;
  return it->second;
}

bool StopContext::SenderIsParent() const {
  return signal.SentByProcess() && signal.sender_pid != 0 &&
         signal.sender_pid == parent.pid;
}

std::string StopContext::DescribeSignal() const {
  std::string name = SignalName(signal.signo);
  if (!signal.SentByProcess()) {
    return absl::StrCat(name, " from the kernel (si_code ", signal.code, ")");
  }
  if (signal.sender_pid == 0) {
    return absl::StrCat(name, " from outside our PID namespace (pid 0, uid ",
                        signal.sender_uid, ")");
  }
  return absl::StrCat(name, " from pid ", signal.sender_pid, " (",
                      sender.comm.empty() ? "?" : sender.comm, ", uid ",
                      signal.sender_uid, ")");
}

}  // namespace gateway
