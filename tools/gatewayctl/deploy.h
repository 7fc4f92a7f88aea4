// What `gatewayctl unit` and `gatewayctl k8s` share: the stop budget (the
// gateway's drain plus a margin, so a supervisor never SIGKILLs a drain that
// is on time) and the gateway's own arguments.
#ifndef TOOLS_GATEWAYCTL_DEPLOY_H_
#define TOOLS_GATEWAYCTL_DEPLOY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/gatewayctl/ctl.h"

namespace gateway::ctl {

// Time after the drain deadline for closing what is left, writing and
// fsyncing the stop record and exiting on a loaded machine.
inline constexpr absl::Duration kStopMargin = absl::Seconds(15);

struct StopBudget {
  absl::Duration drain;           // the gateway's --drain_timeout
  absl::Duration shutdown_delay;  // the gateway's --shutdown_delay (lame duck)
  // shutdown_delay + drain + kStopMargin, for the supervisor: the delay is
  // served before the drain starts.
  absl::Duration stop_timeout;
  // --drain_timeout was given, so the gateway must be told too.
  bool drain_given = false;
};

// From --drain_timeout (default 30s, the gateway's default) and
// --shutdown_delay (default `default_shutdown_delay`: 0 for a systemd unit,
// 5s for Kubernetes, where endpoints learn of a stop late).
absl::StatusOr<StopBudget> StopBudgetFromFlags(absl::Duration default_shutdown_delay);

// The gateway flags that carry the budget: --drain_timeout when given,
// --shutdown_delay when not zero.
std::vector<std::string> StopBudgetArgs(const StopBudget& budget);

// --gateway_args split on spaces: extra flags for the gateway's command line.
std::vector<std::string> GatewayArgsFromFlags();

// Prints a generated file (`text`, or {json_key: text} with --json), or
// fails with its error as a usage error.
int PrintGenerated(const Invocation& inv, const std::string& json_key,
                   const absl::StatusOr<std::string>& text);

// Whole seconds, rounded up: both systemd and Kubernetes want them.
int64_t CeilSeconds(absl::Duration d);

}  // namespace gateway::ctl

#endif  // TOOLS_GATEWAYCTL_DEPLOY_H_
