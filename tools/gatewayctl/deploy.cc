// See deploy.h.
#include "tools/gatewayctl/deploy.h"

#include "absl/strings/str_split.h"
#include "gateway/base/flags.h"
#include "gflags/gflags.h"

DEFINE_string(drain_timeout, "30s",
              "unit, k8s: the gateway's --drain_timeout; the supervisor's stop timeout is this "
              "plus 15s");
DEFINE_string(gateway_args, "",
              "unit, k8s: extra flags for the gateway, space-separated (e.g. "
              "\"--route=127.0.0.1:8080=127.0.0.1:9000\")");

namespace gateway::ctl {

absl::StatusOr<StopBudget> StopBudgetFromFlags() {
  absl::StatusOr<absl::Duration> drain = ParseDurationFlag("drain_timeout", FLAGS_drain_timeout);
  if (!drain.ok()) return drain.status();
  bool given = !gflags::GetCommandLineFlagInfoOrDie("drain_timeout").is_default;
  return StopBudget{*drain, *drain + kStopMargin, given};
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
