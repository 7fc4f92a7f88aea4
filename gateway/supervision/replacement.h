// Zero-downtime replacement (SPEC 3). Two halves of one protocol over the
// control socket:
//
//  old instance (Replacer)                 successor (InheritFrom, then main)
//  gatewayctl: {"cmd":"replace"}
//  fork+exec self --check, reap it       (refused here if the check fails)
//  fork+exec self --takeover_from=SOCK ->
//                                       <- {"cmd":"takeover","pid":N}
//  lock + admin + listeners (SCM_RIGHTS) ->
//                                          serves on the inherited sockets,
//                                          /readyz 200, writes takeover.json
//                                          naming the old process
//                                       <- {"ready":true}
//                                          sends SIGTERM to the old process
//  classifies `takeover`, drains, exits 0
//
// The listening sockets are never closed in between: the old process keeps
// accepting until the successor signals it, and the successor accepts on
// the same sockets from the moment it is ready. If the successor fails
// before it is ready, the old one reaps it and keeps serving.
#ifndef GATEWAY_SUPERVISION_REPLACEMENT_H_
#define GATEWAY_SUPERVISION_REPLACEMENT_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/ops/control_server.h"
#include "gateway/base/proc.h"
#include "gateway/dataplane/proxy.h"
#include "gateway/base/state_dir.h"
#include "gateway/base/sys.h"
#include "gateway/base/trusted_executable.h"

namespace gateway {

inline constexpr absl::Duration kSuccessorStartTimeout = absl::Seconds(30);
// How long the successor binary's `--check` run may take before it is
// killed and the replacement refused.
inline constexpr absl::Duration kSuccessorCheckTimeout = absl::Seconds(10);

// The old instance's side.
class Replacer {
 public:
  struct Options {
    std::string executable;                 // our binary, resolved at start-up
    std::vector<std::string> argv;          // our command line
    Environment environment;                // captured at start-up
    ProcessIdentity self;
    const StateDirectory* state_dir = nullptr;
    Proxy* proxy = nullptr;
    int lock_fd = -1;
    std::function<int()> admin_fd;          // -1 when there is no admin server
    std::function<std::string()> admin_address;
    std::function<bool()> stopping;         // a stop verdict is latched
    // The upstream pools' admin and health state, sent to the successor.
    std::function<nlohmann::json()> upstream_state;
  };

  explicit Replacer(Options options) : options_(std::move(options)) {}

  // Control requests: "replace" from gatewayctl, "takeover" from the
  // successor this instance started.
  void HandleRequest(const nlohmann::json& request, std::shared_ptr<ControlConnection> peer);

  // Why replace cannot work here (a one-pid supervisor, PID 1), or "".
  std::string Refusal() const;

  bool pending() const { return child_ > 0 || checker_ > 0; }
  // Called on ticks: gives up on a check or a successor that takes too long.
  void CheckTimeout();
  // Called when this instance's own stop is latched: a successor that is
  // not ready yet is abandoned.
  void AbandonIfNotReady(const std::string& why);
  // Progress and the final record for the gatewayctl that asked.
  void ReportToRequester(const nlohmann::json& event);

 private:
  // What a child of ours runs: our argv without --takeover_from, with
  // `extra_arg` appended, and our environment as a successor sees it.
  struct ExecPlan {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::vector<size_t> own_pid_slots;  // entries of env that get the child's pid
  };
  ExecPlan PlanExec(const std::string& binary, const std::string& extra_arg) const;
  // fork + fexecve of `executable` with `plan`; with `output_fd` >= 0 the
  // child's stdout and stderr go there. The child's pid, or -1 with errno.
  pid_t Spawn(const TrustedExecutable& executable, ExecPlan plan, int output_fd);

  // The check: the successor's binary with our argv and --check, reaped
  // asynchronously like the successor (pidfd on the event loop, a timeout
  // on ticks); its one-line verdict decides whether StartSuccessor runs.
  void StartCheck(std::shared_ptr<ControlConnection> requester, TrustedExecutable executable);
  // Reads what the check wrote; true when it read something (more may follow).
  bool ReadCheckOutput();
  void OnCheckExit();
  void FinishCheck(int wait_status);
  void StopWatchingCheck();
  void StartSuccessor(std::shared_ptr<ControlConnection> requester, TrustedExecutable executable);
  void HandOver(std::shared_ptr<ControlConnection> successor);
  void OnSuccessorMessage();
  void OnSuccessorExit();
  void Fail(const std::string& why);

  Options options_;
  pid_t child_ = -1;
  UniqueFd pidfd_;
  bool ready_ = false;
  absl::Time started_at_;
  // The running check, if any.
  pid_t checker_ = -1;
  UniqueFd check_pidfd_;
  UniqueFd check_output_;  // read end of its stdout+stderr
  std::string check_text_;
  bool check_killed_ = false;  // by the timeout
  absl::Time check_started_at_;
  std::optional<TrustedExecutable> checked_executable_;
  std::shared_ptr<ControlConnection> requester_;
  std::shared_ptr<ControlConnection> successor_;
};

// The successor's side: what it inherits from its predecessor.
struct Inheritance {
  ProcessIdentity predecessor;
  UniqueFd lock;
  UniqueFd admin;
  std::string admin_address;
  std::map<std::string, UniqueFd> listeners;  // by listen address
  nlohmann::json upstream_state;               // Telemetry::ExportUpstreamState; null: none
  UniqueFd channel;                            // report "ready" or an error here
};

// Connects to the predecessor's control socket and receives its sockets.
absl::StatusOr<Inheritance> InheritFrom(const std::string& control_socket);

// Resolves /proc/self/exe now, so a replacement execs the binary at that
// path (a new version installed there) rather than the deleted old inode.
std::string ExecutablePath();

}  // namespace gateway

#endif  // GATEWAY_SUPERVISION_REPLACEMENT_H_
