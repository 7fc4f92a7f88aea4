// container_pid1: planned when a container runtime stops us.
//  - We are PID 1 of our PID namespace and kill(2) came from outside it: the
//    kernel reports such a sender as pid 0 (docker/podman stop, kubelet).
//  - Our parent is PID 1 and an init shim (tini, dumb-init, catatonit, or
//    their renamed forms docker-init and podman-init), and it sent the
//    signal: shims forward the runtime's stop signal to their child.
// A kill from a process inside the container names that process as the
// sender, so it is not claimed.
#include <string>

#include "absl/strings/str_cat.h"
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/process_roles.h"

namespace gateway {
namespace {

class ContainerPid1Detector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "container_pid1"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    if (!ctx.signal.SentByProcess()) return std::nullopt;
    Verdict verdict;
    verdict.stop_class = StopClass::kPlanned;
    if (ctx.self.pid == 1 && ctx.signal.sender_pid == 0) {
      verdict.evidence = absl::StrCat(ctx.DescribeSignal(),
                                      "; we are PID 1 of our PID namespace, so the sender is "
                                      "the container runtime or the host");
      return verdict;
    }
    if (ctx.parent.pid == 1 && ctx.SenderIsParent() && IsInitShim(ctx.parent.comm)) {
      verdict.evidence = absl::StrCat(ctx.DescribeSignal(), "; our parent is the init shim ",
                                      ctx.parent.comm,
                                      " at PID 1, which forwards the runtime's stop signal");
      return verdict;
    }
    return std::nullopt;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("container_pid1", ContainerPid1Detector);

}  // namespace gateway
