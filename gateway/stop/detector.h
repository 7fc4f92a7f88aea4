// StopReasonDetector: the plugin interface. A detector looks at the
// evidence in a StopContext and either decides the class of the stop or
// has no opinion. The chain (detector_chain.h) asks detectors in order and
// the first verdict wins. To add one, see docs/custom-detectors.md.
#ifndef GATEWAY_STOP_DETECTOR_H_
#define GATEWAY_STOP_DETECTOR_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "gateway/stop/stop_context.h"

namespace gateway {

class StopReasonDetector {
 public:
  virtual ~StopReasonDetector() = default;
  // The registered name, used in --detectors and in records: "systemd".
  virtual absl::string_view name() const = 0;
  // A verdict when the evidence is conclusive, nullopt otherwise. Must not
  // block; may consume a marker through ctx.markers when it decides.
  virtual std::optional<Verdict> Detect(const StopContext& ctx) = 0;
};

}  // namespace gateway

#endif  // GATEWAY_STOP_DETECTOR_H_
