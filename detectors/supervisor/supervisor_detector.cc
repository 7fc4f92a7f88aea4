// supervisor: planned when the signal came from our parent and that parent
// is a known process supervisor: s6-supervise (s6-svc -d), runsv (sv stop)
// or supervisord (supervisorctl stop). A kill from anywhere else names
// another sender and is not claimed.
#include <string>

#include "absl/strings/str_cat.h"
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/process_roles.h"

namespace gateway {
namespace {

class SupervisorDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "supervisor"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    if (!ctx.SenderIsParent()) return std::nullopt;
    std::optional<std::string> supervisor = KnownSupervisor(ctx.parent);
    if (!supervisor) return std::nullopt;
    Verdict verdict;
    verdict.stop_class = StopClass::kPlanned;
    verdict.evidence = absl::StrCat(ctx.DescribeSignal(), "; the sender is our parent, the ",
                                    *supervisor, " process supervisor");
    return verdict;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("supervisor", SupervisorDetector);

}  // namespace gateway
