// gatewayctl reopen-logs: the running gateway reopens its --access_log at
// the same path (logrotate's postrotate; SIGUSR1 does the same). Returns
// once the reopen happened: every line from before it is in the old file.
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/gatewayctl/commands.h"

namespace gateway::ctl {

int ReopenLogsCommand(const Invocation& inv) {
  if (!inv.args.empty()) {
    return Fail(inv, CommandError{kExitUsage, absl::StrCat("unexpected argument '", inv.args[0], "'")});
  }
  absl::StatusOr<Located> located = LocateRunning(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  // The gateway waits up to 2 s for its writer to reach the reopen point.
  absl::StatusOr<nlohmann::json> reply =
      AskGateway(*located->dir, {{"cmd", "reopen-logs"}}, absl::Seconds(5));
  if (!reply.ok()) {
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("gateway pid ", located->instance->identity.pid,
                                               " did not answer: ", reply.status().message())});
  }
  if (!reply->value("ok", false)) {
    return Fail(inv, CommandError{kExitFailure, absl::StrCat("reopen-logs: ",
                                                             reply->value("error", std::string("refused")))});
  }
  PrintResult(inv, {{"reopened", true}, {"pid", located->instance->identity.pid}},
              absl::StrCat("gateway pid ", located->instance->identity.pid, " reopened its access log\n"));
  return kExitOk;
}

}  // namespace gateway::ctl
