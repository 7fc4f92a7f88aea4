// instance.json and the running sentinel; see instance.h.
#include "gateway/stop/instance.h"

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"

namespace gateway {

nlohmann::json InstanceInfoToJson(const InstanceInfo& info) {
  nlohmann::json j = IdentityToJson(info.identity);
  j["version"] = 1;
  j["started_at"] = FormatRfc3339(info.started_at);
  j["state_dir"] = info.state_dir;
  j["detectors"] = info.detectors;
  j["detector_plugins"] = info.detector_plugins;
  j["detector_plugin_timeout"] = info.detector_plugin_timeout;
  j["exit_codes"] = info.exit_codes;
  j["admin"] = info.admin;
  j["marker_ttl"] = info.marker_ttl;
  return j;
}

absl::StatusOr<InstanceInfo> InstanceInfoFromJson(const nlohmann::json& j) {
  absl::StatusOr<ProcessIdentity> identity = IdentityFromJson(j);
  if (!identity.ok()) return identity.status();
  InstanceInfo info;
  info.identity = *identity;
  auto string_field = [&](const char* name) {
    return j.contains(name) && j[name].is_string() ? j[name].get<std::string>() : std::string();
  };
  auto list_field = [&](const char* name) {
    std::vector<std::string> out;
    if (j.contains(name) && j[name].is_array()) {
      for (const auto& v : j[name]) {
        if (v.is_string()) out.push_back(v.get<std::string>());
      }
    }
    return out;
  };
  absl::StatusOr<absl::Time> started = ParseTime(string_field("started_at"));
  info.started_at = started.ok() ? *started : absl::UnixEpoch();
  info.state_dir = string_field("state_dir");
  info.detectors = list_field("detectors");
  info.detector_plugins = list_field("detector_plugins");
  info.detector_plugin_timeout = string_field("detector_plugin_timeout");
  info.exit_codes = string_field("exit_codes");
  info.admin = string_field("admin");
  info.marker_ttl = string_field("marker_ttl");
  return info;
}

absl::Status WriteInstanceInfo(const StateDirectory& dir, const InstanceInfo& info) {
  return dir.WriteAtomically(kInstanceFile, InstanceInfoToJson(info).dump(2) + "\n", 0644);
}

absl::StatusOr<InstanceInfo> ReadInstanceInfo(const StateDirectory& dir) {
  absl::StatusOr<std::string> text = dir.Read(kInstanceFile);
  if (!text.ok()) return text.status();
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(*text);
  if (!j.ok()) {
    return absl::DataLossError(absl::StrCat(dir.PathOf(kInstanceFile), ": ", j.status().message()));
  }
  return InstanceInfoFromJson(*j);
}

PreviousRun InspectPreviousRun(const StateDirectory& dir) {
  PreviousRun previous;
  absl::StatusOr<std::string> record_text = dir.Read(kLastShutdownFile);
  if (record_text.ok()) {
    absl::StatusOr<nlohmann::json> record = ParseJsonObject(*record_text);
    previous.exit = "clean";
    if (record.ok() && record->contains("class") && (*record)["class"].is_string()) {
      previous.stop_class = (*record)["class"].get<std::string>();
    }
    if (record.ok() && record->contains("pid") && (*record)["pid"].is_number_integer()) {
      previous.pid = (*record)["pid"].get<pid_t>();
    }
  }
  absl::StatusOr<std::string> sentinel_text = dir.Read(kRunningSentinel);
  if (!sentinel_text.ok()) return previous;
  absl::StatusOr<nlohmann::json> sentinel = ParseJsonObject(*sentinel_text);
  absl::StatusOr<ProcessIdentity> holder =
      sentinel.ok() ? IdentityFromJson(*sentinel) : sentinel.status();
  if (holder.ok() && IsAlive(*holder)) {
    // The predecessor of a replacement is still running: not a crash.
    return previous;
  }
  // A sentinel with no live owner (or one too torn to read, which the
  // atomic writes make impossible short of disk corruption) means the
  // process that wrote it never reached its clean exit.
  previous.exit = "unclean";
  previous.stop_class.clear();
  previous.pid.reset();
  if (holder.ok()) previous.pid = holder->pid;
  return previous;
}

absl::Status WriteRunningSentinel(const StateDirectory& dir, const ProcessIdentity& self,
                                  absl::Time started_at) {
  nlohmann::json j = IdentityToJson(self);
  j["started_at"] = FormatRfc3339(started_at);
  return dir.WriteAtomically(kRunningSentinel, j.dump() + "\n");
}

void RemoveRunningSentinelIfOurs(const StateDirectory& dir, const ProcessIdentity& self) {
  absl::StatusOr<std::string> text = dir.Read(kRunningSentinel);
  if (!text.ok()) return;
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(*text);
  if (!j.ok()) return;
  absl::StatusOr<ProcessIdentity> holder = IdentityFromJson(*j);
  if (holder.ok() && *holder == self) (void)dir.Remove(kRunningSentinel);
}

}  // namespace gateway
