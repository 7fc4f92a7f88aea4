// The stop record (last-shutdown.json, SPEC 4.6): what every stop leaves
// behind for operators and deployment tooling. A stable interface: fields
// are added, never renamed or removed, and `version` changes if that ever
// has to happen.
#ifndef GATEWAY_STOP_RECORD_H_
#define GATEWAY_STOP_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gateway/proc.h"
#include "gateway/state_dir.h"
#include "gateway/stop_context.h"
#include "nlohmann/json.hpp"

namespace gateway {

struct DrainOutcome {
  int64_t connections_at_signal = 0;
  int64_t closed_at_deadline = 0;
  // Why the drain was cut short ("second signal", "SIGQUIT"); empty if not.
  std::string skipped;
  absl::Duration duration;
};

// The lame-duck period (--shutdown_delay) between the stop signal and the
// drain: /readyz fails, the listeners keep accepting.
struct ShutdownDelayOutcome {
  absl::Duration configured;
  absl::Duration served;
  // Why it was not served (in full): "SIGQUIT", "second stop signal (...)",
  // "takeover: ...", "stopped while starting: ..."; empty if served.
  std::string skipped;
};

// What is known about the run before this one.
struct PreviousRun {
  // "none" (first run), "clean", or "unclean" (SIGKILL, OOM, crash).
  std::string exit = "none";
  std::optional<pid_t> pid;
  // The class the previous run recorded, if it left a record.
  std::string stop_class;
};

struct StopRecord {
  Verdict verdict;
  SignalInfo signal;
  std::string sender_comm;
  Phase phase = Phase::kServing;
  int exit_code = 0;
  ProcessIdentity self;
  absl::Time started_at;
  absl::Time signal_at;
  absl::Time exited_at;
  DrainOutcome drain;
  ShutdownDelayOutcome shutdown_delay;
  int signals_received = 0;
  PreviousRun previous;
  std::vector<std::string> chain;  // detector order in force
  // Markers present but not honoured, each with the reason.
  std::vector<std::string> ignored_markers;
  // Detectors that could not give an opinion, each with why.
  std::vector<std::string> detector_warnings;
};

nlohmann::ordered_json StopRecordToJson(const StopRecord& record);

// Whether `existing` (a parsed stop record) was written by a process that
// started after `self` on the same boot. Only a successor can: one
// instance runs per state directory, except during a takeover.
bool IsRecordOfALaterInstance(const nlohmann::json& existing, const ProcessIdentity& self);

// last-shutdown.json parsed; null when absent or not a JSON object.
nlohmann::json ReadLastStopRecord(const StateDirectory& dir);

// Writes the record: last-shutdown.json (atomic and fsync'd: the durable
// answer), then one line appended to stop-history.jsonl (every stop, not
// fsync'd: history is best effort), rotated to stop-history.jsonl.1 past
// 1 MiB. last-shutdown.json describes the newest instance's stop: a
// predecessor that finishes draining after its successor already stopped
// (and recorded) leaves the successor's record there and goes only to the
// history. Writers on one state directory are serialised by an flock on
// the directory. Failures are logged, with the whole record when
// last-shutdown.json cannot be written; the stop and its exit status go on.
void WriteStopRecord(const StateDirectory& dir, const StopRecord& record);

// The parsed records of stop-history.jsonl.1 then stop-history.jsonl,
// oldest first; lines that are not one JSON object (torn, truncated) are
// skipped.
std::vector<nlohmann::json> ReadStopHistory(const StateDirectory& dir);

// The record `who` left: last-shutdown.json if it is theirs, else the
// newest matching line of stop-history.jsonl (then .1); null if none.
nlohmann::json FindStopRecord(const StateDirectory& dir, const ProcessIdentity& who);

}  // namespace gateway

#endif  // GATEWAY_STOP_RECORD_H_
