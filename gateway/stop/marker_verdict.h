// The one rule both marker detectors follow (takeover_marker and
// planned_stop_file): a marker that names this process and is fresh decides
// the stop and is consumed at that moment, never earlier.
#ifndef GATEWAY_STOP_MARKER_VERDICT_H_
#define GATEWAY_STOP_MARKER_VERDICT_H_

#include <optional>

#include "gateway/stop/markers.h"
#include "gateway/stop/stop_context.h"

namespace gateway {

std::optional<Verdict> DecideByMarker(const StopContext& ctx, MarkerKind kind,
                                      StopClass stop_class);

}  // namespace gateway

#endif  // GATEWAY_STOP_MARKER_VERDICT_H_
