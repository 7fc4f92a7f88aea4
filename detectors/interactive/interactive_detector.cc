// interactive: SIGINT is planned. A terminal sends it for Ctrl-C (the
// kernel is the sender, si_code SI_KERNEL); a tool that sends SIGINT means
// "interrupt" too. Supervisors stop with SIGTERM, so this never hides one.
#include <signal.h>

#include "absl/strings/str_cat.h"
#include "gateway/stop/detector_registry.h"

namespace gateway {
namespace {

class InteractiveDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "interactive"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    if (ctx.signal.signo != SIGINT) return std::nullopt;
    Verdict verdict;
    verdict.stop_class = StopClass::kPlanned;
    verdict.evidence = ctx.signal.code == SI_KERNEL
                           ? "SIGINT from the terminal (Ctrl-C)"
                           : absl::StrCat(ctx.DescribeSignal(), "; SIGINT means interrupt");
    return verdict;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("interactive", InteractiveDetector);

}  // namespace gateway
