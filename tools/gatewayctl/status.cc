// gatewayctl status: the running instance (pid, start time, uptime, state
// directory, chain), how the run before it ended (also when it left no
// record: killed, or a record that could not be written) and the last stop
// record, or a clear "not running" (exit 3, as LSB init scripts do).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gateway/ops/control_server.h"
#include "gateway/stop/instance.h"
#include "gateway/base/json_util.h"
#include "gateway/stop/stop_record.h"
#include "tools/gatewayctl/commands.h"

namespace gateway::ctl {
namespace {

// How long status waits for the running instance's own view: connecting,
// asking and reading the answer together (README, "gatewayctl").
constexpr absl::Duration kLiveStatusTimeout = absl::Seconds(3);

// The running instance's own view over its control socket, or why there
// is none (a stopped or wedged process still has a live pid).
absl::StatusOr<nlohmann::json> LiveStatus(const StateDirectory& dir) {
  absl::StatusOr<nlohmann::json> reply = AskGateway(dir, {{"cmd", "status"}}, kLiveStatusTimeout);
  if (!reply.ok()) return reply.status();
  if (!reply->contains("status") || !(*reply)["status"].is_object()) {
    return absl::DataLossError("its answer has no status");
  }
  return (*reply)["status"];
}

}  // namespace

int StatusCommand(const Invocation& inv) {
  absl::StatusOr<Located> located = Locate(inv.state_dir);
  if (!located.ok()) {
    if (absl::IsNotFound(located.status())) return Fail(inv, located.status(), kExitNotRunning);
    return Fail(inv, located.status());
  }
  nlohmann::json record = ReadLastStopRecord(*located->dir);
  nlohmann::json j = {{"running", located->alive},
                      {"state_dir", located->dir->path()},
                      {"last_shutdown", record}};
  std::string text;
  // Running: what the instance found at its start. Not running: how the
  // last run ended, exactly what the next start will report.
  PreviousRun previous =
      located->alive ? located->instance->previous : InspectPreviousRun(*located->dir);
  j["previous_run"] = PreviousRunToJson(previous);
  std::string unanswered;  // why a live instance gave no status
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
    // Routes and connections come from the live process.
    absl::StatusOr<nlohmann::json> answer = LiveStatus(*located->dir);
    j["answering"] = answer.ok();
    if (!answer.ok()) {
      unanswered =
          absl::IsDeadlineExceeded(answer.status())
              ? absl::StrCat("gateway pid ", info.identity.pid,
                             " did not answer on its control socket within ",
                             absl::FormatDuration(kLiveStatusTimeout),
                             "; it may be stopped (SIGSTOP) or wedged")
              : absl::StrCat("gateway pid ", info.identity.pid,
                             " did not answer on its control socket: ", answer.status().message());
      j["error"] = unanswered;
      absl::StrAppend(&text, "  not answering: routes and connections unknown\n");
    }
    if (answer.ok()) {
      nlohmann::json live = *answer;
      j["instance"]["phase"] = live["phase"];
      j["instance"]["connections_active"] = live["connections_active"];
      j["instance"]["routes"] = live["routes"];
      absl::StrAppend(&text, "  phase: ", live.value("phase", "?"), ", ",
                      live.value("connections_active", 0), " connection(s) open\n");
      for (const auto& route : live["routes"]) {
        absl::StrAppend(&text, "  route ", route.value("name", "?"), ": ",
                        route.value("listen", "?"), " -> ", route.value("upstream", "?"), " (",
                        route.value("connections_active", 0), " open, ",
                        route.value("connections_total", 0), " total)\n");
        // A pool, or an upstream with health checks: each upstream's state.
        if (route.contains("upstreams") && route["upstreams"].is_array() &&
            (route["upstreams"].size() > 1 || route["health_check"].is_object())) {
          for (const auto& u : route["upstreams"]) absl::StrAppend(&text, DescribeUpstream(u, "    "));
        }
      }
    }
  } else {
    j["instance"] = nullptr;
    absl::StrAppend(&text, "gateway is not running (state directory ", located->dir->path(), ")\n");
  }
  if (previous.exit == "unclean" || previous.exit == "unrecorded") {
    absl::StrAppend(&text,
                    DescribePreviousRun(previous, located->alive ? "previous run" : "last run"),
                    "\n");
  }
  if (record.is_object()) {
    absl::StrAppend(
        &text, "last stop: pid ", record.value("pid", 0), " ", record.value("class", "?"), " by ",
        record["detector"].is_string() ? record["detector"].get<std::string>() : "no detector",
        ", exit ", record.value("exit_code", -1), " at ", record.value("exited_at", "?"), "\n  ",
        record.value("evidence", ""), "\n");
  } else if (previous.exit != "unclean" && previous.exit != "unrecorded") {
    // (With an unclean or unrecorded run, the line above says what there is.)
    absl::StrAppend(&text, "last stop: none recorded\n");
  }
  PrintResult(inv, j, text);
  if (!unanswered.empty()) {
    std::fprintf(stderr, "gatewayctl: %s\n", unanswered.c_str());
    return kExitFailure;
  }
  return located->alive ? kExitOk : kExitNotRunning;
}

}  // namespace gateway::ctl
