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
  int signals_received = 0;
  PreviousRun previous;
  std::vector<std::string> chain;  // detector order in force
  // Markers present but not honoured, each with the reason.
  std::vector<std::string> ignored_markers;
};

nlohmann::ordered_json StopRecordToJson(const StopRecord& record);

}  // namespace gateway

#endif  // GATEWAY_STOP_RECORD_H_
