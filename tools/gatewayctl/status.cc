// gatewayctl status: the running instance (pid, start time, uptime, state
// directory, chain) and the last stop record, or a clear "not running"
// (exit 3, as LSB init scripts do).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gateway/json_util.h"
#include "tools/gatewayctl/commands.h"

namespace gateway::ctl {

int StatusCommand(const Invocation& inv) {
  absl::StatusOr<Located> located = Locate(inv.state_dir);
  if (!located.ok()) {
    if (absl::IsNotFound(located.status())) return Fail(inv, located.status(), kExitNotRunning);
    return Fail(inv, located.status());
  }
  nlohmann::json record = ReadLastRecord(*located->dir);
  nlohmann::json j = {{"running", located->alive},
                      {"state_dir", located->dir->path()},
                      {"last_shutdown", record}};
  std::string text;
  if (located->alive) {
    const InstanceInfo& info = *located->instance;
    j["instance"] = InstanceInfoToJson(info);
    j["instance"]["uptime_seconds"] = absl::ToInt64Seconds(absl::Now() - info.started_at);
    absl::StrAppend(&text, "gateway pid ", info.identity.pid, " running since ",
                    FormatRfc3339(info.started_at), " (up ",
                    FormatUptime(absl::Now() - info.started_at), ")\n",
                    "  state directory: ", located->dir->path(), "\n",
                    "  detectors: ", absl::StrJoin(info.detectors, ","), "\n",
                    "  exit codes: ", info.exit_codes, "\n");
    if (!info.admin.empty()) absl::StrAppend(&text, "  admin: http://", info.admin, "/\n");
  } else {
    j["instance"] = nullptr;
    absl::StrAppend(&text, "gateway is not running (state directory ", located->dir->path(), ")\n");
  }
  if (record.is_object()) {
    absl::StrAppend(
        &text, "last stop: pid ", record.value("pid", 0), " ", record.value("class", "?"), " by ",
        record["detector"].is_string() ? record["detector"].get<std::string>() : "no detector",
        ", exit ", record.value("exit_code", -1), " at ", record.value("exited_at", "?"), "\n  ",
        record.value("evidence", ""), "\n");
  } else {
    absl::StrAppend(&text, "last stop: none recorded\n");
  }
  PrintResult(inv, j, text);
  return located->alive ? kExitOk : kExitNotRunning;
}

}  // namespace gateway::ctl
