// gatewayctl: operator and deployment tooling for a running gateway. Finds
// the instance through its state directory (same default as the gateway).
#include <unistd.h>

#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "gateway/base/flags.h"
#include "gateway/base/proc.h"
#include "gateway/base/state_dir.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"

DEFINE_string(state_dir, "",
              "State directory of the gateway (default: the gateway's own default for this "
              "user and environment)");
DEFINE_bool(json, false, "Machine-readable output on stdout (errors too)");

namespace gateway::ctl {
namespace {

constexpr char kUsage[] =
    "gatewayctl: operate a running gateway.\n"
    "Usage: gatewayctl COMMAND [flags]\n"
    "Commands:\n"
    "  stop          write the planned-stop marker, SIGTERM, wait, report the verdict\n"
    "  mark-planned  write the planned-stop marker only (for ExecStop= hooks, deploy tools)\n"
    "  status        the running instance and the last stop record\n"
    "  history       every stop, unclean exit and lost record, oldest first [--since=12h]\n"
    "  explain       dry run: which detector would decide --signal from --sender\n"
    "  replace       zero-downtime replacement: the gateway starts its successor, hands it\n"
    "                the listening sockets, and retires as `takeover`\n"
    "  upstream      list | drain|disable|enable ROUTE ADDRESS: the pools' upstreams and\n"
    "                their admin state (drain: no new connections, open ones finish)\n"
    "  reopen-logs   reopen the gateway's --access_log (logrotate postrotate)\n"
    "  unit          print a systemd unit (Type=notify, Restart=on-failure, ...)\n"
    "  k8s           print a Kubernetes Deployment snippet\n"
    "Exit status: 0 ok, 1 failure, 2 usage error, 3 not running (status).";

struct Command {
  int (*run)(const Invocation&);
  bool takes_arguments = false;
};

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"stop", {StopCommand}},
      {"mark-planned", {MarkPlannedCommand}},
      {"status", {StatusCommand}},
      {"history", {HistoryCommand}},
      {"explain", {ExplainCommand}},
      {"replace", {ReplaceCommand}},
      {"unit", {UnitCommand}},
      {"k8s", {K8sCommand}},
      {"upstream", {UpstreamCommand, true}},
      {"reopen-logs", {ReopenLogsCommand}},
  };
  return *commands;
}

}  // namespace

int Main(int argc, char** argv) {
  gflags::SetUsageMessage(kUsage);
  absl::StatusOr<ParsedCommandLine> command_line = ParseCommandLine(argc, argv);
  Invocation inv;
  // Set before a usage error too: a --json given before the bad argument
  // gets its error as JSON.
  inv.json = FLAGS_json;
  if (!command_line.ok()) return Fail(inv, command_line.status(), kExitUsage);
  if (command_line->help) {
    PrintUsage(kUsage, {"tools/gatewayctl/"});
    return kExitOk;
  }
  if (command_line->positional.empty()) {
    return Fail(inv, CommandError{kExitUsage, "no command given (see --help)"});
  }
  std::string name = command_line->positional[0];
  auto command = Commands().find(name);
  if (command == Commands().end()) {
    return Fail(inv, CommandError{kExitUsage, absl::StrCat("unknown command '", name, "' (see --help)")});
  }
  inv.args.assign(command_line->positional.begin() + 1, command_line->positional.end());
  if (!inv.args.empty() && !command->second.takes_arguments) {
    return Fail(inv, CommandError{kExitUsage, absl::StrCat("unexpected argument '", inv.args[0], "'")});
  }
  inv.state_dir = FLAGS_state_dir.empty() ? DefaultStateDirPath(CurrentEnvironment(), geteuid())
                                          : FLAGS_state_dir;
  return command->second.run(inv);
}

}  // namespace gateway::ctl

int main(int argc, char** argv) { return gateway::ctl::Main(argc, argv); }
