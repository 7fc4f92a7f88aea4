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
    refusal = absl::StrCat("a replacement is already in progress (successor pid ", child_, ")");
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
  StartSuccessor(std::move(peer), *std::move(executable));
}

void Replacer::StartSuccessor(std::shared_ptr<ControlConnection> requester,
                              TrustedExecutable executable) {
  const std::string& binary = executable.path;
  // Everything the child needs is built before fork(): after it, only
  // async-signal-safe calls (other threads may hold locks).
  std::vector<std::string> args;
  for (const std::string& arg : options_.argv) {
    if (!absl::StartsWith(arg, kTakeoverFlag)) args.push_back(arg);
  }
  if (!args.empty()) args[0] = binary;
  args.push_back(kTakeoverFlag + options_.state_dir->PathOf(kControlSocket));
  std::vector<std::string> env;
  std::vector<size_t> own_pid_slots;
  for (const auto& [key, value] : options_.environment) {
    bool dropped = false;
    for (const char* name : kDroppedVariables) dropped |= key == name;
    if (dropped) continue;
    bool own_pid = false;
    for (const char* name : kOwnPidVariables) own_pid |= key == name;
    if (own_pid) {
      own_pid_slots.push_back(env.size());
      env.push_back(key + "=" + std::string(kPidDigits + 1, ' '));
    } else {
      env.push_back(key + "=" + value);
    }
  }
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<char*> pid_slots;
  for (size_t slot : own_pid_slots) pid_slots.push_back(env[slot].data() + env[slot].find('=') + 1);

  options_.proxy->SetChildMayHoldDescriptors(true);
  pid_t child = fork();
  if (child < 0) {
    options_.proxy->SetChildMayHoldDescriptors(false);
    requester->Send({{"ok", false}, {"error", absl::StrCat("fork: ", std::strerror(errno))}});
    return;
  }
  if (child == 0) {
    pid_t self = getpid();
    for (char* slot : pid_slots) WritePid(slot, self);
    ResetSignalsForExec();
    if (executable.script) fcntl(executable.fd.get(), F_SETFD, 0);  // read via /dev/fd/N
    fexecve(executable.fd.get(), argv.data(), envp.data());
    const char message[] = "gateway: error: cannot execute the successor binary\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    _exit(127);
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
  // It connected, so it has exec'd: its copies of our descriptors (all
  // close-on-exec) are gone.
  options_.proxy->SetChildMayHoldDescriptors(false);
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
  if (!pending() || ready_ || absl::Now() - started_at_ < kSuccessorStartTimeout) return;
  Fail(absl::StrCat("successor pid ", child_, " was not ready within ",
                    absl::FormatDuration(kSuccessorStartTimeout)));
}

void Replacer::AbandonIfNotReady(const std::string& why) {
  if (pending() && !ready_) Fail(absl::StrCat("replacement abandoned: ", why));
}

void Replacer::Fail(const std::string& why) {
  LOG(ERROR) << "replace failed, this instance keeps serving: " << why;
  if (child_ > 0) {
    kill(child_, SIGKILL);
    waitpid(child_, nullptr, 0);
    child_ = -1;
  }
  options_.proxy->SetChildMayHoldDescriptors(false);
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
