// instance.json and the running sentinel; see instance.h.
#include "gateway/stop/instance.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"

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
  j["previous_run"] = PreviousRunToJson(info.previous);
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
  if (j.contains("previous_run")) info.previous = PreviousRunFromJson(j["previous_run"]);
  return info;
}

absl::Status WriteInstanceInfo(const StateDirectory& dir, const InstanceInfo& info) {
  return dir.WriteAtomically(kInstanceFile, DumpJson(InstanceInfoToJson(info), 2) + "\n", 0644);
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
  nlohmann::json record = ReadLastStopRecord(dir);
  if (record.is_object()) {
    // The record has the same field names: pid, class, start_time, ...
    previous = PreviousRunFromJson(record);
    previous.exit = "clean";
    previous.last_alive_at = JsonString(record, "exited_at");
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
  // process that wrote it never reached its clean exit, or reached it
  // without a record (then it said so in the sentinel).
  previous = PreviousRun();
  previous.exit = "unclean";
  if (!holder.ok()) return previous;
  previous.pid = holder->pid;
  previous.start_time = holder->start_time_ticks;
  previous.boot_id = holder->boot_id;
  previous.started_at = JsonString(*sentinel, "started_at");
  if (sentinel->contains("stopping") && (*sentinel)["stopping"] == true) {
    PreviousRun logged = PreviousRunFromJson(*sentinel);
    previous.exit = "unrecorded";
    previous.stop_class = logged.stop_class;
    previous.detector = logged.detector;
    previous.exit_code = logged.exit_code;
    previous.last_alive_at = JsonString(*sentinel, "exited_at");
    previous.record_error = logged.record_error.empty() ? "unknown" : logged.record_error;
  }
  return previous;
}

namespace {

// `json` as one line padded with spaces to exactly kRunningSentinelBytes.
std::string PaddedSentinel(const nlohmann::json& json) {
  std::string text = DumpJson(json);
  if (text.size() < kRunningSentinelBytes - 1) text.resize(kRunningSentinelBytes - 1, ' ');
  return text + "\n";
}

}  // namespace

absl::Status WriteRunningSentinel(const StateDirectory& dir, const ProcessIdentity& self,
                                  absl::Time started_at) {
  nlohmann::json j = IdentityToJson(self);
  j["started_at"] = FormatRfc3339(started_at);
  return dir.WriteAtomically(kRunningSentinel, PaddedSentinel(j));
}

absl::Status RecordStopInRunningSentinel(const StateDirectory& dir, const StopRecord& record,
                                         absl::string_view record_error) {
  absl::StatusOr<std::string> text = dir.Read(kRunningSentinel);
  if (!text.ok()) return text.status();
  absl::StatusOr<nlohmann::json> current = ParseJsonObject(*text);
  absl::StatusOr<ProcessIdentity> holder =
      current.ok() ? IdentityFromJson(*current) : current.status();
  if (!holder.ok() || !(*holder == record.self)) {
    return absl::FailedPreconditionError("the running sentinel is not this process's");
  }
  nlohmann::ordered_json full = StopRecordToJson(record);
  nlohmann::json j = IdentityToJson(record.self);
  j["started_at"] = full["started_at"];
  j["stopping"] = true;
  for (const char* field : {"class", "detector", "exit_code", "signal", "signal_at", "exited_at"}) {
    j[field] = full[field];
  }
  j["record_error"] = TruncateUtf8(ValidUtf8(record_error), 300);
  // Whatever room is left is for the evidence; it is in the log in full.
  j["evidence"] = "";
  size_t used = DumpJson(j).size() + 64;  // 64: slack for JSON escapes
  size_t room = used < kRunningSentinelBytes ? kRunningSentinelBytes - used : 0;
  j["evidence"] = TruncateUtf8(JsonString(full, "evidence"), room);
  while (DumpJson(j).size() > kRunningSentinelBytes - 1 && !j["evidence"].get<std::string>().empty()) {
    std::string evidence = j["evidence"];
    j["evidence"] = TruncateUtf8(evidence, evidence.size() / 2);
  }
  std::string padded = PaddedSentinel(j);
  // In place: the file already owns its blocks, so a full filesystem
  // cannot refuse this write (on filesystems that overwrite in place;
  // copy-on-write ones such as btrfs may still need space).
  UniqueFd fd(RetryOnEintr([&] {
    return openat(dir.fd(), kRunningSentinel, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  }));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", dir.PathOf(kRunningSentinel)));
  absl::string_view rest(padded);
  off_t at = 0;
  while (!rest.empty()) {
    ssize_t n = RetryOnEintr([&] { return pwrite(fd.get(), rest.data(), rest.size(), at); });
    if (n <= 0) return ErrnoStatus(n < 0 ? errno : ENOSPC, absl::StrCat("rewrite ", dir.PathOf(kRunningSentinel)));
    rest.remove_prefix(static_cast<size_t>(n));
    at += n;
  }
  if (RetryOnEintr([&] { return ftruncate(fd.get(), at); }) != 0 || fdatasync(fd.get()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("sync ", dir.PathOf(kRunningSentinel)));
  }
  return absl::OkStatus();
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
