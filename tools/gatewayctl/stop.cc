// gatewayctl stop and mark-planned: write the planned-stop marker for the
// running instance (pid + start time + boot id), and for stop also send
// SIGTERM, wait for the process to exit and report the verdict it
// recorded; after --timeout, SIGKILL (--escalate=kill, the default) or
// give up (--escalate=none), announced before the wait begins. The exit
// status follows the verdict: 0 only for a stop recorded as planned.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/ops/control_server.h"
#include "gateway/base/flags.h"
#include "gateway/stop/markers.h"
#include "gateway/base/proc.h"
#include "gateway/stop/stop_record.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"

DEFINE_string(timeout, "45s",
              "stop: how long to wait for the gateway to exit before escalating "
              "(keep it above the gateway's --shutdown_delay plus --drain_timeout)");
DEFINE_string(escalate, "kill",
              "stop: what to do when the gateway has not exited after --timeout: kill (send "
              "SIGKILL) or none (give up, leave it running; also gives up once it has been "
              "stopped, e.g. by SIGSTOP, for 5s)");
DEFINE_string(reason, "", "stop, mark-planned: why, recorded in the marker and the evidence");

namespace gateway::ctl {
namespace {

// A process in state T or t (SIGSTOP, SIGTSTP, a debugger) cannot act on
// SIGTERM until it is continued. Without escalation, stop gives up once
// the gateway has stayed stopped this long instead of waiting out
// --timeout (documented in README.md, "For operators: gatewayctl").
constexpr absl::Duration kStoppedGiveUp = absl::Seconds(5);

enum class Escalation { kKill, kNone };

bool IsStopped(pid_t pid) {
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  return stat.ok() && (stat->state == 'T' || stat->state == 't');
}

enum class WaitOutcome { kExited, kTimedOut, kStayedStopped };

std::string Reason(const std::string& command) {
  return FLAGS_reason.empty() ? absl::StrCat("gatewayctl ", command, " by uid ", getuid())
                              : FLAGS_reason;
}

absl::StatusOr<Marker> MarkPlanned(const Located& located, const std::string& command) {
  Marker marker = NewMarker(located.instance->identity, Reason(command));
  absl::Status written = WriteMarker(*located.dir, MarkerKind::kPlannedStop, marker);
  if (!written.ok()) return written;
  return marker;
}

// Waits until the instance's process is gone. On a terminal, draws the
// drain's progress, which the gateway streams to followers of its control
// socket (connections left, time to the deadline).
// With `give_up_when_stopped`, returns kStayedStopped once the process has
// been stopped for kStoppedGiveUp.
WaitOutcome WaitForExit(const Invocation& inv, const ProcessIdentity& target,
                        absl::Duration timeout, int follow_fd, bool give_up_when_stopped,
                        const char* after) {
  absl::Time start = absl::Now();
  absl::Time deadline = start + timeout;
  // When the process was first seen stopped (state T); InfiniteFuture
  // while it runs. (Not an optional: GCC 12 at -O2 reports a false
  // maybe-uninitialized for std::optional<absl::Time>.)
  absl::Time stopped_since = absl::InfiniteFuture();
  bool drew = false;
  std::string progress;
  while (IsAlive(target)) {  // bounded by the deadline
    absl::Time now = absl::Now();
    if (now >= deadline) {
      if (drew) std::fprintf(stderr, "\n");
      return WaitOutcome::kTimedOut;
    }
    if (!IsStopped(target.pid)) {
      stopped_since = absl::InfiniteFuture();
    } else if (stopped_since == absl::InfiniteFuture()) {
      stopped_since = now;
    } else if (give_up_when_stopped && now - stopped_since >= kStoppedGiveUp) {
      if (drew) std::fprintf(stderr, "\n");
      return WaitOutcome::kStayedStopped;
    }
    if (follow_fd >= 0) {
      absl::StatusOr<nlohmann::json> event = ReadControlLine(follow_fd, absl::Milliseconds(20));
      if (event.ok() && event->value("event", "") == "draining") {
        progress = absl::StrCat(event->value("connections", 0), " connection(s) left, ",
                                FormatUptime(absl::Milliseconds(event->value("deadline_in_ms", 0))),
                                " to the drain deadline");
      } else if (!event.ok() && !absl::IsDeadlineExceeded(event.status())) {
        follow_fd = -1;  // the gateway closed it: it is about to exit
      }
    } else {
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (ShowProgress(inv)) {
      std::fprintf(stderr, "\rstopping pid %d: %s; %s in %s   ", target.pid,
                   progress.empty() ? "waiting" : progress.c_str(), after,
                   FormatUptime(deadline - absl::Now()).c_str());
      drew = true;
    }
  }
  if (drew) std::fprintf(stderr, "\n");
  return WaitOutcome::kExited;
}

}  // namespace

int MarkPlannedCommand(const Invocation& inv) {
  absl::StatusOr<Located> located = LocateRunning(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  absl::StatusOr<Marker> marker = MarkPlanned(*located, "mark-planned");
  if (!marker.ok()) return Fail(inv, marker.status());
  nlohmann::json j = {{"pid", marker->target.pid},
                      {"marker", located->dir->PathOf(MarkerFileName(MarkerKind::kPlannedStop))},
                      {"reason", marker->reason},
                      {"ttl", located->instance->marker_ttl}};
  PrintResult(inv, j,
              absl::StrCat("planned-stop marker written for pid ", marker->target.pid,
                           " (valid for ", located->instance->marker_ttl,
                           "); the next stop signal it receives is planned\n"));
  return kExitOk;
}

// Stops the instance running now: marker, SIGTERM, wait, its record.
// Returns the record, or the exit code of a failure already reported.
std::variant<nlohmann::json, int> StopRunningInstance(const Invocation& inv,
                                                      absl::Duration timeout,
                                                      Escalation escalation) {
  absl::StatusOr<Located> located = LocateRunning(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  const ProcessIdentity target = located->instance->identity;
  absl::StatusOr<Marker> marker = MarkPlanned(*located, "stop");
  if (!marker.ok()) return Fail(inv, marker.status());
  // Progress is a nicety: without the control socket, stop still works.
  absl::StatusOr<UniqueFd> follow = ConnectControl(located->dir->PathOf(kControlSocket));
  if (follow.ok() && (!WriteControlLine(follow->get(), {{"cmd", "follow"}}).ok() ||
                      !ReadControlLine(follow->get(), absl::Seconds(2)).ok())) {
    follow = absl::UnavailableError("no progress");
  }
  int follow_fd = follow.ok() ? follow->get() : -1;
  if (kill(target.pid, SIGTERM) != 0) {
    int err = errno;
    (void)located->dir->Remove(MarkerFileName(MarkerKind::kPlannedStop));
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("cannot signal pid ", target.pid, ": ",
                                               err == EPERM ? "permission denied (run as its user or root)"
                                                            : std::strerror(err))});
  }
  const bool kill_after = escalation == Escalation::kKill;
  // Say what will happen before waiting: the operator may not want it.
  std::fprintf(stderr, "sent SIGTERM to pid %d; waiting up to %s, then %s\n", target.pid,
               FLAGS_timeout.c_str(), kill_after ? "SIGKILL" : "giving up (--escalate=none)");
  std::fflush(stderr);
  WaitOutcome outcome = WaitForExit(inv, target, timeout, follow_fd, !kill_after,
                                    kill_after ? "SIGKILL" : "giving up");
  if (outcome == WaitOutcome::kStayedStopped) {
    // The SIGTERM stays pending and the marker stays: continued within the
    // marker's TTL, it still stops as planned.
    return Fail(inv, CommandError{
                         kExitFailure,
                         absl::StrCat("pid ", target.pid, " is stopped (SIGSTOP or a debugger) ",
                                      "and cannot act on SIGTERM; gave up after ",
                                      FormatUptime(kStoppedGiveUp),
                                      " without SIGKILL (--escalate=none); the SIGTERM and the "
                                      "planned-stop marker stay pending (kill -CONT ",
                                      target.pid, " lets it stop)")});
  }
  if (outcome == WaitOutcome::kTimedOut && !kill_after) {
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("pid ", target.pid, " did not exit within ",
                                               FLAGS_timeout,
                                               "; no SIGKILL (--escalate=none): it is still running")});
  }
  if (outcome == WaitOutcome::kTimedOut) {
    bool was_stopped = IsStopped(target.pid);
    kill(target.pid, SIGKILL);
    WaitForExit(inv, target, absl::Seconds(5), -1, false, "giving up");
    (void)located->dir->Remove(MarkerFileName(MarkerKind::kPlannedStop));
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("pid ", target.pid, " did not exit within ",
                                               FLAGS_timeout,
                                               was_stopped ? " (it was stopped: SIGSTOP or a debugger)" : "",
                                               "; sent SIGKILL")});
  }
  // Its record is in last-shutdown.json, or only in the history when it
  // was retired by a successor that has already stopped too.
  nlohmann::json record = FindStopRecord(*located->dir, target);
  if (!record.is_object()) {
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("pid ", target.pid,
                                               " exited but left no stop record for itself")});
  }
  std::string detector = record["detector"].is_string() ? record["detector"].get<std::string>()
                                                        : std::string("no detector");
  if (!inv.json) {
    std::printf("stopped pid %d: %s (%s), exit status %d\n  %s\n", target.pid,
                record.value("class", "?").c_str(), detector.c_str(),
                record.value("exit_code", -1), record.value("evidence", "").c_str());
  }
  return record;
}

int StopCommand(const Invocation& inv) {
  absl::StatusOr<absl::Duration> timeout = ParseDurationFlag("timeout", FLAGS_timeout);
  if (!timeout.ok()) return Fail(inv, timeout.status(), kExitUsage);
  if (FLAGS_escalate != "kill" && FLAGS_escalate != "none") {
    return Fail(inv, CommandError{kExitUsage, absl::StrCat("--escalate must be kill or none, not '",
                                                           FLAGS_escalate, "'")});
  }
  const Escalation escalation = FLAGS_escalate == "kill" ? Escalation::kKill : Escalation::kNone;
  std::variant<nlohmann::json, int> stopped = StopRunningInstance(inv, *timeout, escalation);
  if (std::holds_alternative<int>(stopped)) return std::get<int>(stopped);
  nlohmann::json record = std::get<nlohmann::json>(stopped);
  // A replacement that won the race retired the process we signalled as
  // `takeover`: the service still runs, in the successor. The operator
  // asked for it to stop, so stop that one too.
  if (record.value("class", "") == "takeover") {
    if (!inv.json) std::printf("it had just been replaced; stopping its successor\n");
    stopped = StopRunningInstance(inv, *timeout, escalation);
    if (std::holds_alternative<int>(stopped)) return std::get<int>(stopped);
    record = std::get<nlohmann::json>(stopped);
  }
  if (inv.json) PrintResult(inv, record, "");
  // The exit status follows the verdict: the operator asked for a planned
  // stop, and anything else (a marker the gateway ignored, a chain without
  // planned_stop_file) is a failure to report, not a success.
  std::string stop_class = record.value("class", "?");
  if (stop_class == "planned") return kExitOk;
  std::string why;
  if (record["ignored_markers"].is_array() && !record["ignored_markers"].empty() &&
      record["ignored_markers"][0].is_string()) {
    why = "; it ignored a marker: " + record["ignored_markers"][0].get<std::string>();
  }
  std::fprintf(stderr, "gatewayctl: the stop of pid %d was not planned: it recorded %s, exit status %d%s\n",
               record.value("pid", 0), stop_class.c_str(), record.value("exit_code", -1),
               why.c_str());
  return kExitFailure;
}

}  // namespace gateway::ctl
