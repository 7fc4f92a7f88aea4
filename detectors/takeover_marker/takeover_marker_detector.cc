// takeover: the successor of a replacement wrote takeover.json naming this process.
// The marker must name this exact process (pid, start time, boot id), be a
// private regular file and be within its TTL (gateway/stop/markers.h); it is
// consumed when, and only when, it decides the stop.
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/marker_verdict.h"

namespace gateway {
namespace {

class TakeoverDetector : public StopReasonDetector {
 public:
  absl::string_view name() const override { return "takeover_marker"; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    return DecideByMarker(ctx, MarkerKind::kTakeover, StopClass::kTakeover);
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("takeover_marker", TakeoverDetector);

}  // namespace gateway
