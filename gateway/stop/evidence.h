// CollectStopContext: turns a received signal into the StopContext that
// detectors see, reading the sender and our parent from /proc at that
// moment. Shared by the gateway (real stops) and gatewayctl explain (dry
// runs against a running instance), so both see the same evidence.
#ifndef GATEWAY_STOP_EVIDENCE_H_
#define GATEWAY_STOP_EVIDENCE_H_

#include <signal.h>

#include "gateway/stop/stop_context.h"

namespace gateway {

SignalInfo SignalInfoFrom(const siginfo_t& info);

struct SelfEvidence {
  ProcessIdentity identity;
  uid_t uid = 0;
  pid_t ppid = 0;  // our parent now
  Environment environment;  // as captured at start-up
};

// The sender as /proc shows it now; empty for kernel-sent signals and
// senders outside our PID namespace. Read once per signal: the log line and
// the detectors see the same snapshot.
ProcessInfo ReadSender(const SignalInfo& signal);

StopContext CollectStopContext(const SignalInfo& signal, ProcessInfo sender,
                               const SelfEvidence& self, MarkerStore* markers, Phase phase,
                               absl::Time now);

}  // namespace gateway

#endif  // GATEWAY_STOP_EVIDENCE_H_
