// gatewayctl's commands, one function each (one file each).
#ifndef TOOLS_GATEWAYCTL_COMMANDS_H_
#define TOOLS_GATEWAYCTL_COMMANDS_H_

#include "tools/gatewayctl/ctl.h"

namespace gateway::ctl {

int StopCommand(const Invocation& inv);
int MarkPlannedCommand(const Invocation& inv);
int StatusCommand(const Invocation& inv);
int HistoryCommand(const Invocation& inv);
int ExplainCommand(const Invocation& inv);
int UnitCommand(const Invocation& inv);
int K8sCommand(const Invocation& inv);
int ReplaceCommand(const Invocation& inv);
int UpstreamCommand(const Invocation& inv);
int ReopenLogsCommand(const Invocation& inv);

// One pooled upstream of /status's routes[].upstreams, for people: address,
// up/DOWN, admin state, weight, connections, connect errors, the last check
// and its latency, and the last change and why; each line starts `indent`.
std::string DescribeUpstream(const nlohmann::json& upstream, const std::string& indent);

}  // namespace gateway::ctl

#endif  // TOOLS_GATEWAYCTL_COMMANDS_H_
