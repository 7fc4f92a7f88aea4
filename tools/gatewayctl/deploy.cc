// See deploy.h.
#include "tools/gatewayctl/deploy.h"

#include "absl/strings/str_split.h"
#include "gateway/base/flags.h"
#include "gflags/gflags.h"

DEFINE_string(drain_timeout, "30s",
              "unit, k8s: the gateway's --drain_timeout; the supervisor's stop timeout is this "
              "plus 15s");
DEFINE_string(shutdown_delay, "",
              "unit, k8s: the gateway's --shutdown_delay (lame duck before the drain; default 0 "
              "for unit, 5s for k8s); added to the supervisor's stop timeout");
DEFINE_string(gateway_args, "",
              "unit, k8s: extra flags for the gateway, space-separated (e.g. "
              "\"--route=127.0.0.1:8080=127.0.0.1:9000\")");

namespace gateway::ctl {

absl::StatusOr<StopBudget> StopBudgetFromFlags(absl::Duration default_shutdown_delay) {
  absl::StatusOr<absl::Duration> drain = ParseDurationFlag("drain_timeout", FLAGS_drain_timeout);
  if (!drain.ok()) return drain.status();
  absl::StatusOr<absl::Duration> delay =
      FLAGS_shutdown_delay.empty() ? default_shutdown_delay
                                   : ParseDurationFlag("shutdown_delay", FLAGS_shutdown_delay);
  if (!delay.ok()) return delay.status();
  StopBudget budget;
  budget.drain = *drain;
  budget.shutdown_delay = *delay;
  budget.stop_timeout = *delay + *drain + kStopMargin;
  budget.drain_given = !gflags::GetCommandLineFlagInfoOrDie("drain_timeout").is_default;
  return budget;
}

std::vector<std::string> StopBudgetArgs(const StopBudget& budget) {
  std::vector<std::string> args;
  if (budget.drain_given) args.push_back("--drain_timeout=" + absl::FormatDuration(budget.drain));
  if (budget.shutdown_delay > absl::ZeroDuration()) {
    args.push_back("--shutdown_delay=" + absl::FormatDuration(budget.shutdown_delay));
  }
  return args;
}

std::vector<std::string> GatewayArgsFromFlags() {
  return absl::StrSplit(FLAGS_gateway_args, ' ', absl::SkipEmpty());
}

int PrintGenerated(const Invocation& inv, const std::string& json_key,
                   const absl::StatusOr<std::string>& text) {
  if (!text.ok()) return Fail(inv, text.status(), kExitUsage);
  PrintResult(inv, {{json_key, *text}}, *text);
  return kExitOk;
}

int64_t CeilSeconds(absl::Duration d) {
  return absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1)));
}

}  // namespace gateway::ctl
