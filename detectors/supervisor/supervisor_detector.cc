// supervisor: planned when the signal came from our parent and that parent
// is a known process supervisor: s6-supervise (s6-svc -d), runsv (sv stop)
// or supervisord (supervisorctl stop). A kill from anywhere else names
// another sender and is not claimed.
#include <string>

#include "absl/strings/str_cat.h"
#include "gateway/detector_registry.h"

namespace gateway {
namespace {

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// supervisord is a Python program: its comm is "supervisord" when run by its
// shebang, or the interpreter's name when run as `python3 .../supervisord`.
std::string SupervisorName(const ProcessInfo& process) {
  for (const char* known : {"s6-supervise", "runsv", "supervisord"}) {
    if (process.comm == known) return known;
  }
  for (size_t i = 0; i < process.cmdline.size() && i < 2; ++i) {
    if (Basename(process.cmdline[i]) == "supervisord") return "supervisord";
  }
  return std::string();
}

class SupervisorDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "supervisor"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    if (!ctx.SenderIsParent()) return std::nullopt;
    std::string supervisor = SupervisorName(ctx.parent);
    if (supervisor.empty()) return std::nullopt;
    Verdict verdict;
    verdict.stop_class = StopClass::kPlanned;
    verdict.evidence = absl::StrCat(ctx.DescribeSignal(), "; the sender is our parent, the ",
                                    supervisor, " process supervisor");
    return verdict;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("supervisor", SupervisorDetector);

}  // namespace gateway
