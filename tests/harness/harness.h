// Black-box test harness: runs the real //gateway and gatewayctl binaries
// as child processes, with a clean environment, a private state directory
// and a notify socket to learn when the gateway is ready; sends signals
// from processes that are not the gateway's parent; reads records and logs.
#ifndef TESTS_HARNESS_HARNESS_H_
#define TESTS_HARNESS_HARNESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace gateway::testing {

// Absolute path of a runfile such as "gateway/gateway".
std::string Runfile(const std::string& path);
// A fresh, empty directory for this test (removed first if present).
std::string FreshTempDir(const std::string& name);
// Text of a file, or "" if unreadable.
std::string ReadText(const std::string& path);
bool Exists(const std::string& path);

// How a child ended: exited with `code`, or was killed by `signal`.
struct ExitStatus {
  bool exited = false;
  int code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string Describe() const;
};

// A child process with its stdout/stderr captured to files.
class Child {
 public:
  struct Options {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;  // the whole environment
    std::string output_dir;                  // where stdout/stderr go
    std::string cwd;
    // Runs as this uid and gid, no supplementary groups (needs root).
    std::optional<uid_t> uid;
  };
  explicit Child(Options options);
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();  // SIGKILLs a child still running

  pid_t pid() const { return pid_; }
  bool Running();
  ExitStatus Wait(absl::Duration timeout = absl::Seconds(20));
  void Signal(int signo);  // from the test process: the child's parent
  std::string Stdout() const { return ReadText(stdout_path_); }
  std::string Stderr() const { return ReadText(stderr_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// PATH, LANG and the sanitizer runtimes' options; never INVOCATION_ID or
// NOTIFY_SOCKET from the machine running the tests.
std::map<std::string, std::string> BaseEnvironment();

// Runs a command to completion and returns its status and output.
struct RunResult {
  ExitStatus status;
  std::string out;
  std::string err;
};
RunResult RunCommand(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env = BaseEnvironment(),
              absl::Duration timeout = absl::Seconds(30));

// Ends a process forked by a test without running anything of the parent's
// (atexit handlers, gtest, a sanitizer's exit-time checks: under TSan,
// _exit() in a fork of a threaded test reports the parent's unjoined
// threads as leaks and turns the status into 66).
[[noreturn]] void ExitForkedChild(int code);

// Sends `signo` to `pid` from a freshly forked process that is neither pid
// 1 nor the target's parent, and waits for it to exit. Returns its pid.
pid_t SignalFromSibling(pid_t pid, int signo);

// A process, forked now, that sends `signo` to `target` when Fire() is
// called: its pid is known in advance (for gatewayctl explain --sender).
class PendingSender {
 public:
  PendingSender(pid_t target, int signo);
  ~PendingSender();
  pid_t pid() const { return pid_; }
  void Fire();  // sends the signal and waits for the sender to exit

 private:
  pid_t pid_ = -1;
  int trigger_fd_ = -1;
};

// Runs the real gatewayctl with `args` (command and flags).
RunResult Gatewayctl(const std::vector<std::string>& args);

// Live (not zombie) gateway processes started with --state_dir=`state_dir`,
// including successors they started: for "nothing is left running" checks.
std::vector<pid_t> GatewayProcessesFor(const std::string& state_dir);

// Polls `condition` until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

// The real gateway binary in a private state directory.
struct GatewayOptions {
  std::vector<std::string> flags;
  std::map<std::string, std::string> extra_env;
  std::string state_dir;  // default: a fresh one for this test
  bool notify = true;     // pass NOTIFY_SOCKET to see READY=1
  // Runfile path of the binary: the stock gateway, or a gateway_binary();
  // an absolute path is used as it is.
  std::string binary = "gateway/gateway";
  // Runs the gateway as this user (uid = gid, no supplementary groups).
  std::optional<uid_t> uid;
};

class Gateway {
 public:
  using Options = GatewayOptions;
  explicit Gateway(const std::string& test_name, Options options = Options());

  pid_t pid() const { return child_->pid(); }
  const std::string& state_dir() const { return state_dir_; }
  Child& child() { return *child_; }

  // Waits for READY=1 on the notify socket. False on timeout or exit.
  bool WaitReady(absl::Duration timeout = absl::Seconds(10));
  // Notifications received so far ("READY=1\nSTATUS=...", ...).
  std::vector<std::string> Notifications();
  ExitStatus Wait(absl::Duration timeout = absl::Seconds(20)) { return child_->Wait(timeout); }
  std::string Log() const { return child_->Stderr(); }
  // The admin server's bound address from instance.json ("127.0.0.1:41234").
  std::string AdminAddress() const;
  // last-shutdown.json, parsed; null when absent or malformed.
  nlohmann::json Record() const;

 private:
  std::string state_dir_;
  std::string notify_path_;
  int notify_fd_ = -1;
  std::vector<std::string> notifications_;
  std::unique_ptr<Child> child_;
};

}  // namespace gateway::testing

#endif  // TESTS_HARNESS_HARNESS_H_
