// Gathering the evidence for one stop; see evidence.h.
#include "gateway/stop/evidence.h"

#include "gateway/base/json_util.h"

namespace gateway {

SignalInfo SignalInfoFrom(const siginfo_t& info) {
  SignalInfo signal;
  signal.signo = info.si_signo;
  signal.code = info.si_code;
  signal.sender_pid = info.si_pid;
  signal.sender_uid = info.si_uid;
  return signal;
}

ProcessInfo ReadSender(const SignalInfo& signal) {
  if (!signal.SentByProcess() || signal.sender_pid <= 0) return ProcessInfo();
  return ReadProcessInfo(signal.sender_pid);
}

StopContext CollectStopContext(const SignalInfo& signal, ProcessInfo sender,
                               const SelfEvidence& self, MarkerStore* markers, Phase phase,
                               absl::Time now) {
  StopContext ctx;
  ctx.signal = signal;
  ctx.sender = std::move(sender);
  ctx.self = self.identity;
  ctx.self_uid = self.uid;
  ctx.parent = ReadProcessInfo(self.ppid);
  ctx.parent.pid = self.ppid;
  // The environment is kept byte for byte for what the process passes on
  // (a successor's execve, NOTIFY_SOCKET); what detectors see, and may
  // quote in evidence, is valid text.
  for (const auto& [name, value] : self.environment) {
    ctx.environment.emplace(ValidUtf8(name), ValidUtf8(value));
  }
  ctx.markers = markers;
  ctx.now = now;
  ctx.phase = phase;
  return ctx;
}

}  // namespace gateway
