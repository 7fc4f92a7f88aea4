// systemd: the stop is planned when three things hold at once.
//  1. INVOCATION_ID is set: we were started by a systemd manager...
//  2. ...and the environment is our own, not inherited from a unit's shell:
//     SYSTEMD_EXEC_PID, when set, names this process.
//  3. The signal came from that manager: pid 1 named "systemd" (the system
//     manager), or our parent when it is a systemd user manager.
// INVOCATION_ID alone proves nothing about who sent the signal; a stray
// `kill -TERM $MAINPID` from a shell must stay unexpected.
#include <string>

#include "absl/strings/str_cat.h"
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/process_roles.h"

namespace gateway {
namespace {

class SystemdDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "systemd"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    std::optional<std::string> invocation_id = ctx.Env("INVOCATION_ID");
    if (!invocation_id || invocation_id->empty()) return std::nullopt;
    std::optional<std::string> exec_pid = ctx.Env("SYSTEMD_EXEC_PID");
    if (exec_pid && *exec_pid != std::to_string(ctx.self.pid)) return std::nullopt;
    if (!ctx.signal.SentByProcess()) return std::nullopt;

    std::string manager;
    if (ctx.signal.sender_pid == 1 && ctx.sender.comm == "systemd") {
      manager = "the system manager";
    } else if (ctx.SenderIsParent() && IsSystemdUserManager(ctx.parent)) {
      manager = "our parent, a systemd user manager";
    } else {
      return std::nullopt;
    }
    Verdict verdict;
    verdict.stop_class = StopClass::kPlanned;
    verdict.evidence = absl::StrCat(
        ctx.DescribeSignal(), ", ", manager, "; INVOCATION_ID set; ",
        exec_pid ? "SYSTEMD_EXEC_PID matches" : "SYSTEMD_EXEC_PID not set");
    return verdict;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("systemd", SystemdDetector);

}  // namespace gateway
