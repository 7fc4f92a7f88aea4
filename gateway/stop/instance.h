// Files that describe the running instance in its state directory:
// instance.json (who runs here, for gatewayctl) and the `running` sentinel
// (present while a process runs; one left behind by a dead process means
// the previous run ended uncleanly: SIGKILL, OOM, crash).
#ifndef GATEWAY_STOP_INSTANCE_H_
#define GATEWAY_STOP_INSTANCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"
#include "gateway/base/state_dir.h"
#include "gateway/stop/stop_record.h"
#include "nlohmann/json.hpp"

namespace gateway {

struct InstanceInfo {
  ProcessIdentity identity;
  absl::Time started_at;
  std::string state_dir;
  std::vector<std::string> detectors;
  std::vector<std::string> detector_plugins;
  std::string detector_plugin_timeout;  // "2s"; empty from an older gateway
  std::string exit_codes;
  std::string admin;           // "127.0.0.1:9901", or empty when disabled
  std::string marker_ttl;      // "60s"
  // How the run before this one ended, as this instance found it at its
  // start ("previous_run", PreviousRunToJson): gatewayctl status shows it.
  PreviousRun previous;
};

nlohmann::json InstanceInfoToJson(const InstanceInfo& info);
absl::StatusOr<InstanceInfo> InstanceInfoFromJson(const nlohmann::json& j);

absl::Status WriteInstanceInfo(const StateDirectory& dir, const InstanceInfo& info);
// NotFound when no instance ever ran here.
absl::StatusOr<InstanceInfo> ReadInstanceInfo(const StateDirectory& dir);

// Looks at the sentinel and the last record left by earlier runs. Call it
// after taking the instance lock and before writing our own sentinel (or,
// from gatewayctl, when nothing runs: then it describes the last run).
PreviousRun InspectPreviousRun(const StateDirectory& dir);

// The sentinel is {"pid", "start_time", "boot_id", "started_at"} padded
// with spaces to kRunningSentinelBytes, so that the stop can rewrite it in
// place, in blocks it already owns, when the filesystem is full.
inline constexpr size_t kRunningSentinelBytes = 1024;
absl::Status WriteRunningSentinel(const StateDirectory& dir, const ProcessIdentity& self,
                                  absl::Time started_at);
// When the stop record could not be written: rewrites our sentinel in
// place (same size, no new space needed, fdatasync'd) with "stopping":
// true, the verdict as logged (class, detector, exit_code, signal,
// signal_at, exited_at, evidence) and "record_error", so the next start
// and gatewayctl report exactly that instead of a clean stop or a crash.
// The sentinel is left in place either way.
absl::Status RecordStopInRunningSentinel(const StateDirectory& dir, const StopRecord& record,
                                         absl::string_view record_error);
// Removes the sentinel if it names `self` (a successor may have replaced it).
void RemoveRunningSentinelIfOurs(const StateDirectory& dir, const ProcessIdentity& self);

}  // namespace gateway

#endif  // GATEWAY_STOP_INSTANCE_H_
