// See replacement.h.
#include "gateway/supervision/replacement.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "gateway/stop/instance.h"
#include "gateway/stop/markers.h"
#include "gateway/base/net.h"
#include "gateway/stop/process_roles.h"
#include "gateway/base/signals.h"
#include "gateway/base/trusted_executable.h"
#include "glog/logging.h"

namespace gateway {
namespace {

constexpr char kTakeoverFlag[] = "--takeover_from=";
// Variables systemd sets for the process it started; the successor becomes
// that process (MAINPID=), so they must name it, not us.
constexpr const char* kOwnPidVariables[] = {"SYSTEMD_EXEC_PID", "WATCHDOG_PID"};
// Socket activation is not inherited: the successor gets our listeners.
constexpr const char* kDroppedVariables[] = {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"};
constexpr int kPidDigits = 20;

// Writes `value` in decimal into `out` (kPidDigits wide, space padded);
// async-signal-safe, for use between fork and exec.
void WritePid(char* out, pid_t value) {
  char digits[kPidDigits];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < kPidDigits);
  for (int i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  out[n] = '\0';
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by ", SignalName(WTERMSIG(status)));
  return "ended";
}

}  // namespace

std::string ExecutablePath() {
  char buffer[4096];
  ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return std::string();
  std::string path(buffer, static_cast<size_t>(n));
  constexpr absl::string_view kDeleted = " (deleted)";
  if (absl::EndsWith(path, kDeleted)) path.resize(path.size() - kDeleted.size());
  return path;
}

std::string Replacer::Refusal() const {
  if (options_.self.pid == 1) {
    return "this gateway is PID 1 of its PID namespace (a container): it cannot exit without "
           "ending the container; restart the container instead";
  }
  ProcessInfo parent = ReadProcessInfo(getppid());
  if (std::optional<std::string> supervisor = KnownSupervisor(parent)) {
    return absl::StrCat("this gateway runs under ", *supervisor,
                        ", which supervises one pid and has no hand-off protocol; "
                        "restart it with `",
                        SupervisorRestartCommand(*supervisor), "` instead");
  }
  return std::string();
}

void Replacer::HandleRequest(const nlohmann::json& request,
                             std::shared_ptr<ControlConnection> peer) {
  std::string cmd = request["cmd"].get<std::string>();
  if (cmd == "takeover") {
    if (!pending() || peer->peer_pid() != child_) {
      peer->Send({{"ok", false}, {"error", "no replacement of this instance started you"}});
      return;
    }
    HandOver(std::move(peer));
    return;
  }
  if (cmd != "replace") {
    peer->Send({{"ok", false}, {"error", absl::StrCat("unknown command '", cmd, "'")}});
    return;
  }
  std::string refusal = Refusal();
  if (refusal.empty() && options_.stopping()) refusal = "this gateway is already stopping";
  if (refusal.empty() && pending()) {
    refusal = checker_ > 0 ? absl::StrCat("a replacement is already in progress (checking the "
                                          "configuration, pid ", checker_, ")")
                           : absl::StrCat("a replacement is already in progress (successor pid ",
                                          child_, ")");
  }
  if (!refusal.empty()) {
    LOG(WARNING) << "replace refused: " << refusal;
    peer->Send({{"ok", false}, {"error", "replace refused: " + refusal}});
    return;
  }
  if (request.contains("binary") && !request["binary"].is_string()) {
    peer->Send({{"ok", false}, {"error", "replace refused: \"binary\" must be a string"}});
    return;
  }
  std::string binary =
      request.contains("binary") ? request["binary"].get<std::string>() : options_.executable;
  // The successor runs as we do (often root): only a binary that root or
  // our uid put where nobody else can change it (trusted_executable.h),
  // and the very inode checked is executed.
  absl::StatusOr<TrustedExecutable> executable = OpenTrustedExecutable(binary, geteuid());
  if (!executable.ok()) {
    LOG(WARNING) << "replace refused: " << executable.status().message();
    peer->Send({{"ok", false},
                {"error", absl::StrCat("replace refused: ", executable.status().message())}});
    return;
  }
  StartCheck(std::move(peer), *std::move(executable));
}

Replacer::ExecPlan Replacer::PlanExec(const std::string& binary,
                                     const std::string& extra_arg) const {
  ExecPlan plan;
  for (const std::string& arg : options_.argv) {
    if (!absl::StartsWith(arg, kTakeoverFlag)) plan.args.push_back(arg);
  }
  if (!plan.args.empty()) plan.args[0] = binary;
  plan.args.push_back(extra_arg);
  for (const auto& [key, value] : options_.environment) {
    bool dropped = false;
    for (const char* name : kDroppedVariables) dropped |= key == name;
    if (dropped) continue;
    bool own_pid = false;
    for (const char* name : kOwnPidVariables) own_pid |= key == name;
    if (own_pid) {
      plan.own_pid_slots.push_back(plan.env.size());
      plan.env.push_back(key + "=" + std::string(kPidDigits + 1, ' '));
    } else {
      plan.env.push_back(key + "=" + value);
    }
  }
  return plan;
}

pid_t Replacer::Spawn(const TrustedExecutable& executable, ExecPlan plan, int output_fd) {
  // Everything the child needs is built before fork(): after it, only
  // async-signal-safe calls (other threads may hold locks).
  std::vector<char*> argv;
  for (std::string& arg : plan.args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& entry : plan.env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<char*> pid_slots;
  for (size_t slot : plan.own_pid_slots) {
    pid_slots.push_back(plan.env[slot].data() + plan.env[slot].find('=') + 1);
  }
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    pid_t self = getpid();
    for (char* slot : pid_slots) WritePid(slot, self);
    ResetSignalsForExec();
    if (output_fd >= 0) {
      dup2(output_fd, STDOUT_FILENO);
      dup2(output_fd, STDERR_FILENO);
    }
    if (executable.script) fcntl(executable.fd.get(), F_SETFD, 0);  // read via /dev/fd/N
    fexecve(executable.fd.get(), argv.data(), envp.data());
    const char message[] = "gateway: error: cannot execute the successor binary\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    _exit(127);
  }
  return child;
}

// The check runs here, in the old gateway, rather than in gatewayctl: only
// this process knows the exact argv and environment the successor gets
// (and gatewayctl may run as another user, outside the unit's cgroup and
// environment), and a check of anything else could pass while the real
// successor fails. It never blocks the event loop: the pidfd says when it
// exited, its output is read as it comes, and ticks enforce the timeout.
void Replacer::StartCheck(std::shared_ptr<ControlConnection> requester,
                          TrustedExecutable executable) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    requester->Send({{"ok", false}, {"error", absl::StrCat("pipe: ", std::strerror(errno))}});
    return;
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
  pid_t child = Spawn(executable, PlanExec(executable.path, "--check"), write_end.get());
  if (child < 0) {
    requester->Send({{"ok", false}, {"error", absl::StrCat("fork: ", std::strerror(errno))}});
    return;
  }
  write_end.Reset();  // EOF on the read end once the check (and its children) are done
  checker_ = child;
  check_killed_ = false;
  check_text_.clear();
  check_started_at_ = absl::Now();
  checked_executable_ = std::move(executable);
  requester_ = std::move(requester);
  check_output_ = std::move(read_end);
  options_.proxy->Watch(check_output_.get(), [this] { (void)ReadCheckOutput(); });
  check_pidfd_.Reset(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
  if (check_pidfd_.valid()) options_.proxy->Watch(check_pidfd_.get(), [this] { OnCheckExit(); });
  LOG(INFO) << "replace: checking the configuration with " << checked_executable_->path
            << " --check (pid " << child << ")";
  ReportToRequester({{"event", "checking"}, {"pid", child}});
}

bool Replacer::ReadCheckOutput() {
  // Bounded: the last few KiB are kept, which hold the verdict line.
  constexpr size_t kKeep = 16 * 1024;
  char buffer[4096];
  ssize_t n = RetryOnEintr([&] { return read(check_output_.get(), buffer, sizeof buffer); });
  if (n > 0) {
    check_text_.append(buffer, static_cast<size_t>(n));
    if (check_text_.size() > kKeep) check_text_.erase(0, check_text_.size() - kKeep);
    return true;
  }
  if (n < 0 && errno == EAGAIN) return false;
  options_.proxy->Unwatch(check_output_.get());  // EOF or an error: nothing more to read
  check_output_.Reset();
  return false;
}

void Replacer::OnCheckExit() {
  if (checker_ <= 0) return;
  int status = 0;
  if (waitpid(checker_, &status, WNOHANG) != checker_) return;
  FinishCheck(status);
}

void Replacer::StopWatchingCheck() {
  if (check_pidfd_.valid()) {
    options_.proxy->Unwatch(check_pidfd_.get());
    check_pidfd_.Reset();
  }
  if (check_output_.valid()) {
    options_.proxy->Unwatch(check_output_.get());
    check_output_.Reset();
  }
  checker_ = -1;
}

void Replacer::FinishCheck(int wait_status) {
  // What it wrote but we have not read yet (it has exited: no blocking).
  // A plugin probe it forked may still hold the pipe: read what is there, never wait.
  while (check_output_.valid() && ReadCheckOutput()) {
  }
  pid_t checker = checker_;
  StopWatchingCheck();
  std::optional<TrustedExecutable> executable = std::move(checked_executable_);
  checked_executable_.reset();
  std::shared_ptr<ControlConnection> requester = std::move(requester_);
  requester_.reset();
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0 && !check_killed_) {
    LOG(INFO) << "replace: the configuration checks (pid " << checker << ")";
    if (options_.stopping()) {
      if (requester) {
        requester->Send({{"ok", false}, {"error", "replace refused: this gateway is stopping"}});
      }
      return;
    }
    StartSuccessor(std::move(requester), *std::move(executable));
    return;
  }
  // The verdict is the check's last "gateway: error: " line, without the prefix.
  constexpr absl::string_view kErrorPrefix = "gateway: error: ";
  std::string verdict;
  for (absl::string_view line : absl::StrSplit(check_text_, '\n', absl::SkipWhitespace())) {
    if (absl::StartsWith(line, kErrorPrefix)) verdict = std::string(line.substr(kErrorPrefix.size()));
  }
  if (check_killed_) {
    verdict = absl::StrCat("`", executable->path, " --check` did not finish within ",
                           absl::FormatDuration(kSuccessorCheckTimeout), " and was killed");
  } else if (verdict.empty()) {
    verdict = absl::StrCat("`", executable->path, " --check` ", DescribeWaitStatus(wait_status));
  }
  std::string refusal = "replace refused: the new configuration does not check: " + verdict;
  LOG(WARNING) << refusal << "; this instance keeps serving";
  check_text_.clear();
  if (requester) requester->Send({{"ok", false}, {"error", refusal}});
}

void Replacer::StartSuccessor(std::shared_ptr<ControlConnection> requester,
                              TrustedExecutable executable) {
  const std::string& binary = executable.path;
  pid_t child = Spawn(executable,
                      PlanExec(binary, kTakeoverFlag + options_.state_dir->PathOf(kControlSocket)),
                      -1);
  if (child < 0) {
    // The requester may have gone away while the check ran.
    if (requester) {
      requester->Send({{"ok", false}, {"error", absl::StrCat("fork: ", std::strerror(errno))}});
    }
    return;
  }
  child_ = child;
  ready_ = false;
  started_at_ = absl::Now();
  requester_ = std::move(requester);
  pidfd_.Reset(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
  if (pidfd_.valid()) options_.proxy->Watch(pidfd_.get(), [this] { OnSuccessorExit(); });
  LOG(INFO) << "replace: started successor pid " << child << " (" << binary << ")";
  ReportToRequester({{"event", "started"}, {"pid", child}});
}

void Replacer::HandOver(std::shared_ptr<ControlConnection> successor) {
  successor_ = std::move(successor);
  std::vector<int> fds = {options_.lock_fd};
  nlohmann::json message = IdentityToJson(options_.self);
  message["ok"] = true;
  int admin = options_.admin_fd ? options_.admin_fd() : -1;
  message["admin"] = admin >= 0 ? nlohmann::json(options_.admin_address()) : nlohmann::json(nullptr);
  if (admin >= 0) fds.push_back(admin);
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& [address, fd] : options_.proxy->ListenerFds()) {
    listeners.push_back(address);
    fds.push_back(fd);
  }
  message["listeners"] = listeners;
  // The pools' state follows on a line of its own (it can be larger than
  // one descriptor-carrying message); the flag tells the successor to wait
  // for it, so a successor of an older version still works.
  message["upstream_state_follows"] = static_cast<bool>(options_.upstream_state);
  absl::Status sent = SendFds(successor_->fd(), DumpJson(message) + "\n", fds);
  if (!sent.ok()) return Fail(absl::StrCat("could not hand over the sockets: ", sent.message()));
  if (options_.upstream_state) successor_->Send({{"upstream_state", options_.upstream_state()}});
  LOG(INFO) << "replace: handed " << listeners.size() << " listener(s)"
            << (admin >= 0 ? " and the admin socket" : "") << " to pid " << child_;
  successor_->SetReader([this] { OnSuccessorMessage(); });
}

void Replacer::OnSuccessorMessage() {
  int fd = successor_->fd();
  absl::StatusOr<nlohmann::json> message = ReadControlLine(fd, absl::Seconds(1));
  successor_->SetReader(nullptr);
  if (message.ok() && message->value("ready", false)) {
    ready_ = true;
    LOG(INFO) << "replace: successor pid " << child_ << " is ready; expecting its SIGTERM";
    ReportToRequester({{"event", "ready"}, {"pid", child_}});
    return;
  }
  std::string why = message.ok() ? message->value("error", std::string("no reason given"))
                                 : std::string(message.status().message());
  Fail(absl::StrCat("successor pid ", child_, " failed before it was ready: ", why));
}

void Replacer::OnSuccessorExit() {
  int status = 0;
  if (waitpid(child_, &status, WNOHANG) != child_) return;
  options_.proxy->Unwatch(pidfd_.get());
  pidfd_.Reset();
  if (ready_) {
    // It took over and then died: it is the main process now, not ours to
    // judge; its own record and the supervisor will tell.
    LOG(WARNING) << "replace: successor pid " << child_ << " " << DescribeWaitStatus(status)
                 << " after taking over";
    child_ = -1;
    return;
  }
  pid_t dead = child_;
  child_ = -1;
  Fail(absl::StrCat("successor pid ", dead, " ", DescribeWaitStatus(status),
                    " before it was ready (see the gateway's log)"));
}

void Replacer::CheckTimeout() {
  if (checker_ > 0) {
    OnCheckExit();  // also reaps it where pidfd_open is not available
    if (checker_ > 0 && !check_killed_ &&
        absl::Now() - check_started_at_ >= kSuccessorCheckTimeout) {
      LOG(WARNING) << "replace: the configuration check pid " << checker_ << " takes longer than "
                   << absl::FormatDuration(kSuccessorCheckTimeout) << "; killing it";
      check_killed_ = true;
      kill(checker_, SIGKILL);  // reaped by OnCheckExit, which then refuses
    }
    return;
  }
  if (!pending() || ready_ || absl::Now() - started_at_ < kSuccessorStartTimeout) return;
  Fail(absl::StrCat("successor pid ", child_, " was not ready within ",
                    absl::FormatDuration(kSuccessorStartTimeout)));
}

void Replacer::AbandonIfNotReady(const std::string& why) {
  if (checker_ > 0) {
    kill(checker_, SIGKILL);
    waitpid(checker_, nullptr, 0);
    StopWatchingCheck();
    checked_executable_.reset();
    check_text_.clear();
    ReportToRequester({{"ok", false}, {"error", absl::StrCat("replace failed: replacement "
                                                             "abandoned: ", why)}});
    requester_.reset();
    return;
  }
  if (pending() && !ready_) Fail(absl::StrCat("replacement abandoned: ", why));
}

void Replacer::Fail(const std::string& why) {
  LOG(ERROR) << "replace failed, this instance keeps serving: " << why;
  if (child_ > 0) {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
    child_ = -1;
  }
  if (pidfd_.valid()) {
    options_.proxy->Unwatch(pidfd_.get());
    pidfd_.Reset();
  }
  // The successor may have installed its sentinel; this instance still runs.
  absl::Status restored = WriteRunningSentinel(*options_.state_dir, options_.self, absl::Now());
  if (!restored.ok()) LOG(ERROR) << restored.message();
  successor_.reset();
  ReportToRequester({{"ok", false}, {"error", "replace failed: " + why}});
  requester_.reset();
}

void Replacer::ReportToRequester(const nlohmann::json& event) {
  if (requester_ && !requester_->Send(event)) requester_.reset();
}

absl::StatusOr<Inheritance> InheritFrom(const std::string& control_socket) {
  absl::StatusOr<UniqueFd> channel = ConnectControl(control_socket);
  if (!channel.ok()) return channel.status();
  absl::Status sent =
      WriteControlLine(channel->get(), {{"cmd", "takeover"}, {"pid", getpid()}});
  if (!sent.ok()) return sent;
  absl::StatusOr<std::pair<std::string, std::vector<UniqueFd>>> received =
      ReceiveFds(channel->get(), 256);
  if (!received.ok()) return received.status();
  auto& [text, fds] = *received;
  absl::StatusOr<nlohmann::json> message = ParseJsonObject(text.substr(0, text.find('\n')));
  if (!message.ok()) return absl::DataLossError("predecessor sent a malformed hand-over");
  if (!message->value("ok", false)) {
    return absl::FailedPreconditionError(
        absl::StrCat("predecessor refused the takeover: ", message->value("error", std::string("?"))));
  }
  absl::StatusOr<ProcessIdentity> predecessor = IdentityFromJson(*message);
  if (!predecessor.ok()) return predecessor.status();
  size_t expected = 1 + ((*message)["admin"].is_string() ? 1 : 0) + (*message)["listeners"].size();
  if (fds.size() != expected) {
    return absl::DataLossError(absl::StrCat("predecessor sent ", fds.size(),
                                            " descriptors, expected ", expected));
  }
  Inheritance inheritance;
  inheritance.predecessor = *predecessor;
  size_t next = 0;
  inheritance.lock = std::move(fds[next++]);
  if ((*message)["admin"].is_string()) {
    inheritance.admin_address = (*message)["admin"].get<std::string>();
    inheritance.admin = std::move(fds[next++]);
  }
  for (const auto& address : (*message)["listeners"]) {
    inheritance.listeners[address.get<std::string>()] = std::move(fds[next++]);
  }
  if (message->value("upstream_state_follows", false)) {
    absl::StatusOr<nlohmann::json> state = ReadControlLine(channel->get(), absl::Seconds(5));
    if (!state.ok()) {
      return absl::DataLossError(
          absl::StrCat("predecessor's upstream state did not arrive: ", state.status().message()));
    }
    inheritance.upstream_state = state->value("upstream_state", nlohmann::json(nullptr));
  }
  inheritance.channel = std::move(*channel);
  return inheritance;
}

}  // namespace gateway
