// planned_stop_file: gatewayctl stop/mark-planned or a supervisor's stop hook wrote planned-stop.json naming this process.
// The marker must name this exact process (pid, start time, boot id), be a
// private regular file and be within its TTL (gateway/stop/markers.h); it is
// consumed when, and only when, it decides the stop.
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/marker_verdict.h"

namespace gateway {
namespace {

class PlannedStopFileDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "planned_stop_file"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    return DecideByMarker(ctx, MarkerKind::kPlannedStop, StopClass::kPlanned);
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("planned_stop_file", PlannedStopFileDetector);

}  // namespace gateway
