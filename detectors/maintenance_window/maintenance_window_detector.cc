// maintenance_window: a stop signal that arrives inside a weekly
// maintenance window declared in GATEWAY_MAINTENANCE_WINDOW (the
// environment captured at start-up, e.g. from a unit's Environment=) is
// planned. For fleets whose hosts are patched and rebooted in a fixed
// window: those stops must not page anyone or restart-loop.
//
// The trade-off is explicit: inside the window ANY stop signal is planned,
// including a stray kill. That is why it is opt-in (--detectors=) and best
// placed after the detectors that look at real evidence. A malformed value
// is logged at the stop and the detector then has no opinion.
#include "absl/strings/str_cat.h"
#include "detectors/maintenance_window/maintenance_window.h"
#include "gateway/stop/detector_registry.h"
#include "glog/logging.h"

namespace gateway {
namespace {

class MaintenanceWindowDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "maintenance_window"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    std::optional<std::string> declared = ctx.Env(kMaintenanceWindowEnv);
    if (!declared) return std::nullopt;
    absl::StatusOr<std::vector<WeeklyWindow>> windows = ParseMaintenanceWindows(*declared);
    if (!windows.ok()) {
      LOG(WARNING) << "maintenance_window has no opinion: " << windows.status().message();
      return std::nullopt;
    }
    std::optional<WeeklyWindow> window = WindowContaining(*windows, ctx.now);
    if (!window) return std::nullopt;
    Verdict verdict;
    verdict.stop_class = StopClass::kPlanned;
    verdict.evidence = absl::StrCat(
        ctx.DescribeSignal(), " at ", absl::FormatTime("%a %H:%M UTC", ctx.now, absl::UTCTimeZone()),
        ", inside the maintenance window '", window->text, "' (", kMaintenanceWindowEnv, ")");
    return verdict;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("maintenance_window", MaintenanceWindowDetector);

}  // namespace gateway
