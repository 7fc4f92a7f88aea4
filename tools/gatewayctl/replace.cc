// gatewayctl replace: asks the running gateway to start its successor
// (which stays in the same cgroup and supervision tree), follows the
// hand-over over the control socket — the new configuration checked
// (`gateway --check`, run by the gateway; a failing check refuses the
// replacement), successor started, ready, old instance draining — and
// reports the old instance's recorded verdict.
// Exits 0 only when the old instance recorded `takeover`. A --binary is
// resolved against our working directory (the gateway's is not the
// caller's) and checked here as the gateway will check it again
// (gateway/base/trusted_executable.h), so a refusal is one clear line.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/ops/control_server.h"
#include "gateway/base/flags.h"
#include "gateway/base/proc.h"
#include "gateway/stop/stop_record.h"
#include "gateway/base/trusted_executable.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"

DECLARE_string(timeout);
DEFINE_string(binary, "",
              "replace: the successor's binary (default: the running gateway's own path, so a "
              "new version installed there is picked up)");

namespace gateway::ctl {
namespace {

// --binary made absolute against our working directory and checked for
// execution by the gateway's uid; the canonical path to send, or the
// failure already reported.
std::variant<std::string, int> CheckedBinary(const Invocation& inv, const ProcessIdentity& gateway) {
  std::string binary = FLAGS_binary;
  if (binary[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == nullptr) {
      return Fail(inv, CommandError{kExitFailure,
                                    absl::StrCat("cannot resolve --binary=", binary,
                                                 ": getcwd: ", std::strerror(errno))});
    }
    binary = absl::StrCat(cwd, "/", binary);
  }
  // The successor runs as the gateway does, which need not be our uid.
  std::optional<uid_t> owner = ReadProcessInfo(gateway.pid).uid;
  absl::StatusOr<TrustedExecutable> executable =
      OpenTrustedExecutable(binary, owner.value_or(geteuid()));
  if (!executable.ok()) {
    return Fail(inv, CommandError{kExitFailure, absl::StrCat("replace refused: ",
                                                             executable.status().message())});
  }
  return executable->path;
}

}  // namespace

int ReplaceCommand(const Invocation& inv) {
  absl::StatusOr<absl::Duration> timeout = ParseDurationFlag("timeout", FLAGS_timeout);
  if (!timeout.ok()) return Fail(inv, timeout.status(), kExitUsage);
  absl::StatusOr<Located> located = LocateRunning(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  const ProcessIdentity old = located->instance->identity;
  std::string binary;
  if (!FLAGS_binary.empty()) {
    std::variant<std::string, int> checked = CheckedBinary(inv, old);
    if (std::holds_alternative<int>(checked)) return std::get<int>(checked);
    binary = std::get<std::string>(checked);
  }
  absl::StatusOr<UniqueFd> control = ConnectControl(located->dir->PathOf(kControlSocket));
  if (!control.ok()) return Fail(inv, control.status());
  nlohmann::json request = {{"cmd", "replace"}};
  if (!binary.empty()) request["binary"] = binary;
  absl::Status sent = WriteControlLine(control->get(), request);
  if (!sent.ok()) return Fail(inv, sent);

  absl::Time deadline = absl::Now() + *timeout;
  pid_t successor = 0;
  nlohmann::json record;
  bool progress_drawn = false;
  for (;;) {
    absl::StatusOr<nlohmann::json> event = ReadControlLine(control->get(), deadline - absl::Now());
    if (!event.ok()) break;  // the old instance exited (or timed out): check below
    if (event->contains("error")) {
      if (progress_drawn) std::fprintf(stderr, "\n");
      return Fail(inv, CommandError{kExitFailure, (*event)["error"].get<std::string>()});
    }
    std::string kind = event->value("event", "");
    if (kind == "started" || kind == "ready") successor = event->value("pid", 0);
    if (kind == "stopped") {
      record = (*event)["record"];
      break;
    }
    if (!ShowProgress(inv)) continue;
    if (kind == "checking") {
      std::fprintf(stderr, "checking the configuration (pid %d)\n", event->value("pid", 0));
    }
    if (kind == "started") std::fprintf(stderr, "started successor pid %d\n", successor);
    if (kind == "ready") {
      std::fprintf(stderr, "successor pid %d is ready; pid %d is draining\n", successor, old.pid);
    }
    if (kind == "draining") {
      std::fprintf(stderr, "\rpid %d draining: %lld connection(s) left, %s to the deadline   ",
                   old.pid, static_cast<long long>(event->value("connections", 0)),
                   FormatUptime(absl::Milliseconds(event->value("deadline_in_ms", 0))).c_str());
      progress_drawn = true;
    }
  }
  if (progress_drawn) std::fprintf(stderr, "\n");
  if (!record.is_object()) {
    // The connection ended without the final event: wait for the exit and
    // read the record from the state directory.
    while (IsAlive(old) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    if (IsAlive(old)) {
      return Fail(inv, CommandError{kExitFailure,
                                    absl::StrCat("pid ", old.pid, " did not finish within ",
                                                 FLAGS_timeout, "; it is still running")});
    }
    record = FindStopRecord(*located->dir, old);
  }
  if (!record.is_object() || record.value("pid", 0) != old.pid) {
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("pid ", old.pid, " left no stop record")});
  }
  // The old instance writes its record just before exiting; be exact about
  // "exited" for tooling that acts next.
  while (IsAlive(old) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  std::string stop_class = record.value("class", "?");
  if (stop_class != "takeover") {
    // Another stop (gatewayctl stop, a signal) won the race: no replacement
    // happened, whatever the successor got to.
    bool successor_runs = successor > 0 && kill(successor, 0) == 0;
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("replace did not happen: pid ", old.pid,
                                               " stopped as ", stop_class,
                                               " before the hand-over completed; ",
                                               successor_runs
                                                   ? absl::StrCat("successor pid ", successor,
                                                                  " is running")
                                                   : std::string("no successor is running"))});
  }
  nlohmann::json result = {{"old_pid", old.pid}, {"new_pid", successor}, {"record", record}};
  PrintResult(inv, result,
              absl::StrCat("replaced pid ", old.pid, " with pid ", successor, ": pid ", old.pid,
                           " recorded ", stop_class, " (",
                           record["detector"].is_string() ? record["detector"].get<std::string>()
                                                          : "no detector",
                           "), exit status ", record.value("exit_code", -1), ", ",
                           record["drain"].value("connections_at_signal", 0),
                           " connection(s) drained, ",
                           record["drain"].value("closed_at_deadline", 0), " cut at the deadline\n"));
  return kExitOk;
}

}  // namespace gateway::ctl
