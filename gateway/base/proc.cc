// Reading process evidence from /proc; see proc.h.
#include "gateway/base/proc.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"

extern char** environ;

namespace gateway {

absl::StatusOr<ProcStat> ParseProcStat(const std::string& text) {
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return absl::InvalidArgumentError("malformed /proc stat: no comm field");
  }
  ProcStat stat;
  // Any process names itself (prctl(PR_SET_NAME), or the kernel cuts a
  // long UTF-8 name mid-character at 15 bytes): valid text from here on.
  stat.comm = ValidUtf8(absl::string_view(text).substr(open + 1, close - open - 1));
  // Fields after the comm start with field 3 (state).
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(text).substr(close + 1), ' ', absl::SkipEmpty());
  // Field n (1-based, as in proc(5)) is fields[n - 3].
  constexpr size_t kStartTimeField = 22;
  if (fields.size() < kStartTimeField - 2) {
    return absl::InvalidArgumentError("malformed /proc stat: too few fields");
  }
  stat.state = fields[0].empty() ? '?' : fields[0][0];
  int ppid = 0;
  if (!absl::SimpleAtoi(fields[1], &ppid) ||
      !absl::SimpleAtoi(fields[kStartTimeField - 3], &stat.start_time_ticks)) {
    return absl::InvalidArgumentError("malformed /proc stat: bad number");
  }
  stat.ppid = ppid;
  return stat;
}

absl::StatusOr<ProcStat> ReadProcStat(pid_t pid) {
  absl::StatusOr<std::string> text = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!text.ok()) return text.status();
  return ParseProcStat(*text);
}

absl::StatusOr<std::string> ReadBootId() {
  absl::StatusOr<std::string> text = ReadFile("/proc/sys/kernel/random/boot_id");
  if (!text.ok()) return text.status();
  return std::string(absl::StripAsciiWhitespace(*text));
}

absl::StatusOr<ProcessIdentity> ReadProcessIdentity(pid_t pid) {
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::string> boot_id = ReadBootId();
  if (!boot_id.ok()) return boot_id.status();
  ProcessIdentity identity;
  identity.pid = pid;
  identity.start_time_ticks = stat->start_time_ticks;
  identity.boot_id = *boot_id;
  return identity;
}

static std::optional<uid_t> ReadRealUid(pid_t pid) {
  absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    if (!absl::ConsumePrefix(&line, "Uid:")) continue;
    std::vector<absl::string_view> ids = absl::StrSplit(line, '\t', absl::SkipEmpty());
    uint32_t uid = 0;
    if (!ids.empty() && absl::SimpleAtoi(ids[0], &uid)) return uid;
  }
  return std::nullopt;
}

ProcessInfo ReadProcessInfo(pid_t pid) {
  ProcessInfo info;
  info.pid = pid;
  if (pid <= 0) return info;
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) return info;
  info.readable = true;
  info.ppid = stat->ppid;
  info.comm = stat->comm;
  info.start_time_ticks = stat->start_time_ticks;
  info.uid = ReadRealUid(pid);
  absl::StatusOr<std::string> cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  if (cmdline.ok()) {
    for (absl::string_view arg : absl::StrSplit(*cmdline, '\0', absl::SkipEmpty())) {
      info.cmdline.push_back(ValidUtf8(arg));
    }
  }
  return info;
}

bool IsAlive(const ProcessIdentity& identity) {
  if (identity.pid <= 0) return false;
  absl::StatusOr<std::string> boot_id = ReadBootId();
  if (!boot_id.ok() || *boot_id != identity.boot_id) return false;
  absl::StatusOr<ProcStat> stat = ReadProcStat(identity.pid);
  return stat.ok() && stat->start_time_ticks == identity.start_time_ticks &&
         stat->state != 'Z' && stat->state != 'X';
}

Environment ParseEnviron(const std::string& text) {
  Environment env;
  for (absl::string_view entry : absl::StrSplit(text, '\0', absl::SkipEmpty())) {
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

absl::StatusOr<Environment> ReadEnviron(pid_t pid) {
  absl::StatusOr<std::string> text = ReadFile(absl::StrCat("/proc/", pid, "/environ"));
  if (!text.ok()) return text.status();
  return ParseEnviron(*text);
}

Environment CurrentEnvironment() {
  Environment env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

namespace {
struct NamedSignal {
  int signo;
  const char* name;
};
constexpr NamedSignal kSignals[] = {
    {SIGHUP, "HUP"},   {SIGINT, "INT"},   {SIGQUIT, "QUIT"}, {SIGILL, "ILL"},
    {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"}, {SIGBUS, "BUS"},   {SIGFPE, "FPE"},
    {SIGKILL, "KILL"}, {SIGUSR1, "USR1"}, {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"},
    {SIGPIPE, "PIPE"}, {SIGALRM, "ALRM"}, {SIGTERM, "TERM"}, {SIGCHLD, "CHLD"},
    {SIGCONT, "CONT"}, {SIGSTOP, "STOP"}, {SIGTSTP, "TSTP"}, {SIGTTIN, "TTIN"},
    {SIGTTOU, "TTOU"}, {SIGURG, "URG"},   {SIGXCPU, "XCPU"}, {SIGXFSZ, "XFSZ"},
    {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"}, {SIGWINCH, "WINCH"}, {SIGIO, "IO"},
    {SIGPWR, "PWR"},   {SIGSYS, "SYS"},
};
}  // namespace

std::string SignalName(int signo) {
  for (const NamedSignal& s : kSignals) {
    if (s.signo == signo) return absl::StrCat("SIG", s.name);
  }
  return absl::StrCat("signal ", signo);
}

std::optional<int> ParseSignal(const std::string& text) {
  int number = 0;
  if (absl::SimpleAtoi(text, &number)) {
    if (number > 0 && number < NSIG) return number;
    return std::nullopt;
  }
  std::string name = absl::AsciiStrToUpper(text);
  absl::string_view view(name);
  absl::ConsumePrefix(&view, "SIG");
  for (const NamedSignal& s : kSignals) {
    if (view == s.name) return s.signo;
  }
  return std::nullopt;
}

}  // namespace gateway
