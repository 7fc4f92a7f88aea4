// Evidence about processes, read from /proc once and shared by the core,
// the detectors and gatewayctl: a process's identity (pid + start time +
// boot id, which survives pid reuse), its name, command line, parent, owner
// and environment.
#ifndef GATEWAY_BASE_PROC_H_
#define GATEWAY_BASE_PROC_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gateway {

// Identifies one process for its whole life. A pid alone is reused; the
// start time (field 22 of /proc/PID/stat, clock ticks after boot) and the
// boot id make the triple unique.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_time_ticks = 0;
  std::string boot_id;

  bool operator==(const ProcessIdentity& other) const {
    return pid == other.pid && start_time_ticks == other.start_time_ticks &&
           boot_id == other.boot_id;
  }
  bool operator!=(const ProcessIdentity& other) const { return !(*this == other); }
};

// What /proc tells about another process at one moment. Fields that could
// not be read (the process exited, or belongs to another user) stay empty.
struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::optional<uid_t> uid;
  // Both valid UTF-8 (ValidUtf8: invalid bytes as "\xNN").
  std::string comm;                   // "systemd", "s6-supervise"
  std::vector<std::string> cmdline;  // argv as the process sees it
  uint64_t start_time_ticks = 0;
  bool readable = false;  // false when /proc/PID/stat could not be read
};

using Environment = std::map<std::string, std::string>;

// Fields of /proc/PID/stat that the gateway uses.
struct ProcStat {
  std::string comm;  // valid UTF-8 (ValidUtf8)
  char state = '?';
  pid_t ppid = 0;
  uint64_t start_time_ticks = 0;
};

// Parses the text of /proc/PID/stat. The comm field may contain spaces and
// parentheses, so it is delimited by the first '(' and the last ')'.
absl::StatusOr<ProcStat> ParseProcStat(const std::string& text);
absl::StatusOr<ProcStat> ReadProcStat(pid_t pid);

// The boot id of the running kernel (/proc/sys/kernel/random/boot_id).
absl::StatusOr<std::string> ReadBootId();

// The identity of `pid` now, or an error when it does not exist.
absl::StatusOr<ProcessIdentity> ReadProcessIdentity(pid_t pid);

// Best-effort snapshot of `pid`; never fails, see ProcessInfo::readable.
ProcessInfo ReadProcessInfo(pid_t pid);

// True when `identity` names a process that is alive now (same pid, same
// start time, same boot). A zombie counts as dead.
bool IsAlive(const ProcessIdentity& identity);

// Parses NUL-separated KEY=VALUE pairs (the format of /proc/PID/environ).
Environment ParseEnviron(const std::string& text);
// The environment of another process as it was at its exec.
absl::StatusOr<Environment> ReadEnviron(pid_t pid);
// The environment of this process, from `environ`.
Environment CurrentEnvironment();

// "SIGTERM" for SIGTERM, "signal 42" for one without a name.
std::string SignalName(int signo);
// Parses "TERM", "SIGTERM" or "15"; nullopt when unknown.
std::optional<int> ParseSignal(const std::string& text);

}  // namespace gateway

#endif  // GATEWAY_BASE_PROC_H_
