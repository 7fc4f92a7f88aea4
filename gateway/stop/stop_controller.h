// StopController: owns the signal thread. It reads every handled signal
// with sigwaitinfo, logs the sender, classifies the first stop signal once
// through the detector chain and latches the verdict; later stop signals
// only cut the drain short. The main loop learns about it through an
// eventfd and reads the latched stop from here.
#ifndef GATEWAY_STOP_STOP_CONTROLLER_H_
#define GATEWAY_STOP_STOP_CONTROLLER_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gateway/stop/detector_chain.h"
#include "gateway/stop/evidence.h"
#include "gateway/stop/exit_policy.h"
#include "gateway/stop/markers.h"
#include "gateway/base/signals.h"
#include "gateway/base/state_dir.h"
#include "gateway/base/sys.h"

namespace gateway {

// The verdict on the first stop signal, with what the record needs.
struct LatchedStop {
  Verdict verdict;
  SignalInfo signal;
  std::string sender_comm;
  Phase phase = Phase::kServing;
  absl::Time signal_at;
  int exit_code = 0;
  std::vector<std::string> marker_warnings;
  std::vector<std::string> detector_warnings;
};

class StopController {
 public:
  struct Options {
    DetectorChain chain;
    ExitPolicy exit_policy;
    const StateDirectory* state_dir = nullptr;
    absl::Duration marker_ttl = kDefaultMarkerTtl;
    SelfEvidence self;
    // Called on the signal thread for SIGHUP.
    std::function<void()> on_reload;
    // Called on the signal thread for SIGUSR1; must not block.
    std::function<void()> on_reopen_logs;
    // Called on the signal thread once a stop is latched, and again when the
    // drain must be skipped (a second stop signal, SIGQUIT).
    std::function<void()> on_stop;
  };

  explicit StopController(Options options);
  StopController(const StopController&) = delete;
  StopController& operator=(const StopController&) = delete;

  // Starts reading signals. The handled signals must be blocked already in
  // every thread (BlockHandledSignals in main()).
  void Start();

  void SetPhase(Phase phase) { phase_.store(phase); }
  Phase phase() const { return phase_.load(); }

  // Readable (eventfd) whenever something changed: a stop was latched or
  // the drain must be skipped. The main loop reads and clears it.
  int wake_fd() const { return wake_fd_.get(); }
  void ClearWake();

  bool stop_requested() const { return stop_requested_.load(); }
  bool skip_drain() const { return skip_drain_.load(); }
  std::string skip_drain_reason() const;
  int signals_received() const { return signals_received_.load(); }
  // The latched stop; only valid once stop_requested() is true.
  LatchedStop latched() const;

  // Sleeps up to `timeout`, returning early (true) when a stop is latched.
  bool WaitForStop(absl::Duration timeout);

 private:
  void ReadSignals();
  void HandleStopSignal(const SignalInfo& signal, ProcessInfo sender, SignalAction action);
  void Wake();

  Options options_;
  UniqueFd wake_fd_;
  std::atomic<Phase> phase_{Phase::kStarting};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> skip_drain_{false};
  std::atomic<int> signals_received_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  LatchedStop latched_;        // guarded by mu_
  std::string skip_reason_;    // guarded by mu_
  std::thread thread_;
};

}  // namespace gateway

#endif  // GATEWAY_STOP_STOP_CONTROLLER_H_
