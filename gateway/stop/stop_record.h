// The stop record (last-shutdown.json, SPEC 4.6): what every stop leaves
// behind for operators and deployment tooling. A stable interface: fields
// are added, never renamed or removed, and `version` changes if that ever
// has to happen.
#ifndef GATEWAY_STOP_STOP_RECORD_H_
#define GATEWAY_STOP_STOP_RECORD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"
#include "gateway/base/state_dir.h"
#include "gateway/stop/stop_context.h"
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

// What is known about the run before this one (or, for gatewayctl when
// nothing runs, the last run): from last-shutdown.json and the `running`
// sentinel it left.
struct PreviousRun {
  // "none" (first run), "clean" (it left its record), "unclean" (it left
  // its sentinel and no record: SIGKILL, OOM, crash), or "unrecorded" (it
  // stopped, but its record could not be written, e.g. a full disk; what it
  // decided is in the sentinel it rewrote in place).
  std::string exit = "none";
  std::optional<pid_t> pid;
  std::optional<uint64_t> start_time;
  std::string boot_id;
  std::string started_at;  // RFC 3339; empty when unknown
  // The class it recorded (clean) or logged (unrecorded).
  std::string stop_class;
  std::string detector;
  std::optional<int> exit_code;
  // When it was last known alive (unrecorded: when it gave up on its
  // record, just before its exit); empty when unknown (unclean).
  std::string last_alive_at;
  std::string record_error;  // unrecorded: why the record is missing
};

// {"exit", "pid", "class", "start_time", "boot_id", "started_at",
// "detector", "exit_code", "last_alive_at", "record_error"}, nulls for
// what is not known: `previous_run` in records, /status, instance.json and
// gatewayctl status --json.
nlohmann::ordered_json PreviousRunToJson(const PreviousRun& previous);
PreviousRun PreviousRunFromJson(const nlohmann::json& j);
// One line for people: `which` ("previous run", "last run") and what is
// known, e.g. "previous run (pid 41) did not exit cleanly: ...". Empty for
// "none".
std::string DescribePreviousRun(const PreviousRun& previous, absl::string_view which);

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
// Returns an error when the durable copy (last-shutdown.json, or the
// history line for a predecessor) could not be written: the caller must
// then keep the running sentinel, rewritten to say so
// (RecordStopInRunningSentinel), not remove it.
absl::Status WriteStopRecord(const StateDirectory& dir, const StopRecord& record);

// Appends one entry to stop-history.jsonl, whole or not at all: a tail
// left without its newline (a crash or a full disk mid-write) is closed
// first so the entry is never glued to it, and a write that fails part way
// is cut back off. Takes the record lock.
absl::Status AppendStopHistory(const StateDirectory& dir, const nlohmann::ordered_json& entry);

// Every entry of the stop history, oldest first: stop-history.jsonl.1
// (rotated) then stop-history.jsonl. Lines that do not parse as a JSON
// object (a torn tail, disk damage) are skipped. Entries are stop records
// (StopRecordToJson), or, with "kind", what a start-up found about a
// previous run that left no record (PreviousRunHistoryEntry).
std::vector<nlohmann::json> ReadStopHistory(const StateDirectory& dir);

// The history entry for a previous run that left no stop record ("kind":
// "unclean_exit" or "unrecorded_stop"), as the next start appends it:
// pid, start_time, boot_id, started_at, class/detector/exit_code as logged
// (unrecorded) or null (unclean), exited_at (when known), evidence (the
// DescribePreviousRun line), record_error, reported_at and reported_by
// (the pid of the start that found it; null when gatewayctl shows one no
// start has reported yet).
nlohmann::ordered_json PreviousRunHistoryEntry(const PreviousRun& previous,
                                               absl::Time reported_at,
                                               std::optional<pid_t> reported_by);

// Whether `record` was left by `who` (same pid and start time).
bool IsRecordOf(const nlohmann::json& record, const ProcessIdentity& who);

// The record `who` left: last-shutdown.json if it is theirs, else the
// newest matching line of stop-history.jsonl (then .1); null if none.
nlohmann::json FindStopRecord(const StateDirectory& dir, const ProcessIdentity& who);

}  // namespace gateway

#endif  // GATEWAY_STOP_STOP_RECORD_H_
