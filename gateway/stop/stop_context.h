// The interface between the core and the StopReasonDetector plugins:
// StopContext (the evidence, an immutable snapshot taken when a stop signal
// is read), Verdict (what a detector concludes) and the stop classes.
#ifndef GATEWAY_STOP_STOP_CONTEXT_H_
#define GATEWAY_STOP_STOP_CONTEXT_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"

namespace gateway {

class MarkerStore;

// Why the process stopped, from the supervisor's point of view. The exit
// policy maps each class to an exit status.
enum class StopClass { kTakeover, kPlanned, kUnexpected };

absl::string_view StopClassName(StopClass stop_class);  // "planned"
std::optional<StopClass> ParseStopClass(absl::string_view name);

// Where the process was in its life when the signal was read.
enum class Phase { kStarting, kServing, kDraining };
absl::string_view PhaseName(Phase phase);

// The conclusion of one detector.
struct Verdict {
  StopClass stop_class = StopClass::kUnexpected;
  std::string detector;  // the detector's name; empty when none decided
  std::string evidence;  // for people: what was seen, not what was assumed
};

// The signal as the kernel reported it (siginfo_t).
struct SignalInfo {
  int signo = 0;
  int code = 0;            // si_code: SI_USER for kill(2), SI_KERNEL for a tty
  pid_t sender_pid = 0;    // 0 when sent from outside our PID namespace
  uid_t sender_uid = 0;

  // True when a process sent it with kill(2)/sigqueue(2)/tgkill(2), so
  // sender_pid and sender_uid are meaningful.
  bool SentByProcess() const;
};

// Everything a detector may look at. Built once per stop signal; detectors
// read it and nothing else, so each can be tested with a fabricated one.
struct StopContext {
  SignalInfo signal;
  // The sender as /proc showed it when the signal was read; not readable
  // when it already exited or lives outside our PID namespace.
  ProcessInfo sender;
  // This process, and its parent at the time the signal was read.
  ProcessIdentity self;
  uid_t self_uid = 0;
  ProcessInfo parent;
  // The environment captured at start-up, before anything could change it.
  Environment environment;
  // Markers in the state directory. Null when there is none to look at.
  MarkerStore* markers = nullptr;
  absl::Time now;
  Phase phase = Phase::kServing;
  // Where a detector notes why it could not give an opinion (a plugin that
  // crashed or timed out); logged and listed in the record's
  // `detector_warnings`. Null in a dry run that keeps none.
  std::vector<std::string>* warnings = nullptr;

  // The value of an environment variable captured at start-up.
  std::optional<std::string> Env(const std::string& name) const;
  // True when the sender is our parent process.
  bool SenderIsParent() const;
  // "SIGTERM from pid 1234 (kill, uid 0)" or "SIGINT from the kernel (tty)".
  std::string DescribeSignal() const;
};

}  // namespace gateway

#endif  // GATEWAY_STOP_STOP_CONTEXT_H_
