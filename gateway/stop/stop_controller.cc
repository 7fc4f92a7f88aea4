// The signal thread and the latched verdict; see stop_controller.h.
#include "gateway/stop/stop_controller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gateway/base/signals.h"
#include "glog/logging.h"

namespace gateway {

StopController::StopController(Options options)
    : options_(std::move(options)), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  PCHECK(wake_fd_.valid()) << "eventfd";
}

void StopController::Start() {
  thread_ = std::thread([this] { ReadSignals(); });
  thread_.detach();  // Lives until the process exits; it owns no resources.
}

void StopController::Wake() {
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
  cv_.notify_all();
  if (options_.on_stop) options_.on_stop();
}

void StopController::ClearWake() {
  uint64_t value;
  (void)!read(wake_fd_.get(), &value, sizeof value);
}

std::string StopController::skip_drain_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return skip_reason_;
}

LatchedStop StopController::latched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latched_;
}

bool StopController::WaitForStop(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                      [this] { return stop_requested_.load(); });
}

void StopController::ReadSignals() {
  sigset_t set = HandledSignals();
  for (;;) {
    siginfo_t info;
    int signo = sigwaitinfo(&set, &info);
    if (signo < 0) {
      if (errno != EINTR) PLOG(ERROR) << "sigwaitinfo";
      continue;
    }
    signals_received_.fetch_add(1);
    SignalInfo signal = SignalInfoFrom(info);
    StopContext described;
    described.signal = signal;
    described.sender = ReadSender(signal);
    // nginx-style: every signal, with its sender, before anything else.
    LOG(INFO) << "received " << described.DescribeSignal();
    SignalAction action = ActionFor(signo);
    switch (action) {
      case SignalAction::kReopenLogs:
        if (options_.on_reopen_logs) options_.on_reopen_logs();
        break;
      case SignalAction::kReload:
        if (options_.on_reload) options_.on_reload();
        break;
      case SignalAction::kStop:
      case SignalAction::kStopWithoutDrain:
        HandleStopSignal(signal, std::move(described.sender), action);
        break;
      case SignalAction::kIgnore:
        break;
    }
  }
}

void StopController::HandleStopSignal(const SignalInfo& signal, ProcessInfo sender,
                                      SignalAction action) {
  if (stop_requested_.load()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!skip_drain_.load()) {
      skip_reason_ = absl::StrCat("second stop signal (", SignalName(signal.signo), ")");
      LOG(WARNING) << "second stop signal " << SignalName(signal.signo)
                   << ": skipping the rest of the drain; the verdict stays "
                   << StopClassName(latched_.verdict.stop_class);
      skip_drain_.store(true);
    }
  } else {
    absl::Time now = absl::Now();
    StateDirMarkerStore markers(options_.state_dir, options_.marker_ttl);
    SelfEvidence self = options_.self;
    self.ppid = getppid();
    Phase phase = phase_.load();
    StopContext ctx = CollectStopContext(signal, std::move(sender), self, &markers, phase, now);
    std::vector<std::string> detector_warnings;
    ctx.warnings = &detector_warnings;
    Verdict verdict = ClassifyStop(options_.chain, ctx);
    std::vector<std::string> warnings = markers.TakeWarnings();
    for (const std::string& warning : warnings) LOG(WARNING) << warning;
    int exit_code = options_.exit_policy.ExitCodeFor(verdict.stop_class);
    LOG(INFO) << "stop classified as " << StopClassName(verdict.stop_class) << " by "
              << (verdict.detector.empty() ? "no detector" : verdict.detector) << " (phase "
              << PhaseName(phase) << ", exit " << exit_code << "): " << verdict.evidence;
    std::lock_guard<std::mutex> lock(mu_);
    latched_.verdict = std::move(verdict);
    latched_.signal = signal;
    latched_.sender_comm = ctx.sender.comm;
    latched_.phase = phase;
    latched_.signal_at = now;
    latched_.exit_code = exit_code;
    latched_.marker_warnings = std::move(warnings);
    latched_.detector_warnings = std::move(detector_warnings);
    if (action == SignalAction::kStopWithoutDrain) {
      skip_reason_ = SignalName(signal.signo);
      skip_drain_.store(true);
    }
    stop_requested_.store(true);
  }
  Wake();
}

}  // namespace gateway
