// gatewayctl unit: prints a systemd unit for the gateway that works as
// printed (tests/supervisors boots systemd and runs it): Type=notify,
// restarts only unexpected stops, a stop timeout above the drain budget,
// NotifyAccess=all for the replacement's MAINPID=, and hardening that keeps
// the evidence the detectors read (/proc of the sender) visible.
#include <unistd.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gateway/base/flags.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"
#include "tools/gatewayctl/deploy.h"

DEFINE_string(gateway_path, "",
              "unit: absolute path of the gateway binary for ExecStart= (default: `gateway` "
              "next to gatewayctl)");
DEFINE_bool(user, false,
            "unit: for a systemd user manager (systemctl --user): WantedBy=default.target");
DEFINE_string(watchdog, "",
              "unit: WatchdogSec= (e.g. 10s); the gateway then sends WATCHDOG=1 at half of it");
DECLARE_string(state_dir);

namespace gateway::ctl {
namespace {

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::StatusOr<std::string> GatewayPath() {
  if (!FLAGS_gateway_path.empty()) {
    if (FLAGS_gateway_path[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "--gateway_path=", FLAGS_gateway_path, " must be absolute (ExecStart= needs it)"));
    }
    return FLAGS_gateway_path;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return absl::InternalError("cannot read /proc/self/exe; pass --gateway_path");
  std::string candidate = Dirname(std::string(self, n)) + "/gateway";
  if (access(candidate.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no gateway binary next to gatewayctl (",
                                            candidate, "); pass --gateway_path"));
  }
  return candidate;
}

// "Shutdown delay 5s (--shutdown_delay) + " when there is one.
std::string ShutdownDelayComment(const StopBudget& budget) {
  if (budget.shutdown_delay <= absl::ZeroDuration()) return "";
  return absl::StrCat("Shutdown delay ", absl::FormatDuration(budget.shutdown_delay),
                      " (--shutdown_delay) + ");
}

bool StateDirGiven() { return !gflags::GetCommandLineFlagInfoOrDie("state_dir").is_default; }

// The gateway's command line; `mode` ("--check" or nothing) follows the path.
std::string GatewayCommand(const std::string& gateway, const StopBudget& budget,
                           const std::string& mode = "") {
  std::vector<std::string> argv = {gateway};
  if (!mode.empty()) argv.push_back(mode);
  if (StateDirGiven()) argv.push_back("--state_dir=" + FLAGS_state_dir);
  for (const std::string& arg : StopBudgetArgs(budget)) argv.push_back(arg);
  for (const std::string& arg : GatewayArgsFromFlags()) argv.push_back(arg);
  return absl::StrJoin(argv, " ");
}

// Where markers and stop records live: /run/gateway (%t/gateway for a user
// manager), which is gatewayctl's own default, kept across restarts so the
// next run reports the previous one; or the directory given with --state_dir.
std::string StateDirectorySection() {
  if (StateDirGiven()) {
    return absl::StrCat("# State directory (markers, stop records) given with --state_dir.\n",
                        "ReadWritePaths=", FLAGS_state_dir, "\n");
  }
  return "# State directory (markers, stop records): /run/gateway, gatewayctl's default;\n"
         "# kept across restarts so the next run and `gatewayctl status` see the last stop.\n"
         "RuntimeDirectory=gateway\n"
         "RuntimeDirectoryMode=0700\n"
         "RuntimeDirectoryPreserve=yes\n";
}

absl::StatusOr<std::string> SystemdUnit() {
  // No lame duck by default: systemd has no load balancer to tell.
  absl::StatusOr<StopBudget> budget = StopBudgetFromFlags(absl::ZeroDuration());
  if (!budget.ok()) return budget.status();
  absl::StatusOr<std::string> gateway = GatewayPath();
  if (!gateway.ok()) return gateway.status();
  std::string watchdog;
  if (!FLAGS_watchdog.empty()) {
    absl::StatusOr<absl::Duration> interval = ParseDurationFlag("watchdog", FLAGS_watchdog);
    if (!interval.ok()) return interval.status();
    watchdog = absl::StrCat(
        "# The gateway sends WATCHDOG=1 at half of this; a hung process is killed and restarted.\n"
        "WatchdogSec=", CeilSeconds(*interval), "s\n");
  }
  const char* install = FLAGS_user ? "default.target" : "multi-user.target";
  const char* install_dir = FLAGS_user ? "~/.config/systemd/user" : "/etc/systemd/system";
  const char* systemctl = FLAGS_user ? "systemctl --user" : "systemctl";
  return absl::StrCat(
      "# gateway.service, printed by `gatewayctl unit`. Install with:\n"
      "#   gatewayctl unit > ", install_dir, "/gateway.service\n"
      "#   ", systemctl, " daemon-reload && ", systemctl, " enable --now gateway\n"
      "[Unit]\n"
      "Description=Gateway, a layer-4 TCP gateway that knows why it is stopped\n"
      "After=network.target\n"
      "\n"
      "[Service]\n"
      "# READY=1 once serving, then STATUS=, STOPPING=1 and WATCHDOG=1 (sd_notify).\n"
      "Type=notify\n"
      "# `gatewayctl replace` starts a successor that announces itself with MAINPID=;\n"
      "# systemd accepts that from a process other than the main one only with all.\n"
      "NotifyAccess=all\n"
      "# `gateway --check` validates the flags and --config with the code a start runs,\n"
      "# binds nothing and writes nothing: a bad configuration fails the start or the\n"
      "# reload with one line (systemctl status) and the running gateway keeps serving.\n"
      "ExecStartPre=", GatewayCommand(*gateway, *budget, "--check"), "\n",
      "ExecStart=", GatewayCommand(*gateway, *budget), "\n",
      "# Reload: check first; systemd runs ExecReload= lines in order, stopping at a failure.\n"
      "ExecReload=", GatewayCommand(*gateway, *budget, "--check"), "\n",
      "ExecReload=/bin/kill -HUP $MAINPID\n"
      "# Exit 1 (an unexpected stop, e.g. a stray kill) is restarted; 0 (planned or\n"
      "# takeover) is not; 78 (configuration error) would only fail again.\n"
      "Restart=on-failure\n"
      "RestartSec=1s\n"
      "RestartPreventExitStatus=78\n"
      "# SIGTERM to the gateway alone (it drains); SIGKILL to whatever is left.\n"
      "KillMode=mixed\n"
      "# ", ShutdownDelayComment(*budget), "Drain budget ", absl::FormatDuration(budget->drain),
      " (--drain_timeout) + ", absl::FormatDuration(kStopMargin),
      " to close the rest, write the stop record and exit.\n"
      "TimeoutStopSec=", CeilSeconds(budget->stop_timeout), "s\n",
      watchdog, StateDirectorySection(),
      "# Hardening that keeps the evidence the detectors read visible: no\n"
      "# ProtectProc=invisible (hides the sender's /proc); no ProtectKernelTunables\n"
      "# or ProtectControlGroups (in a systemd-nspawn container they uncover the\n"
      "# host's boot id, so gatewayctl's markers no longer name this process).\n"
      "NoNewPrivileges=yes\n"
      "ProtectSystem=strict\n"
      "ProtectHome=read-only\n"
      "PrivateTmp=yes\n"
      "ProtectKernelModules=yes\n"
      "RestrictSUIDSGID=yes\n"
      "LockPersonality=yes\n"
      "\n"
      "[Install]\n"
      "WantedBy=", install, "\n");
}

}  // namespace

int UnitCommand(const Invocation& inv) { return PrintGenerated(inv, "unit", SystemdUnit()); }

}  // namespace gateway::ctl
