// ClassifyStop: the one place that decides the class of a stop. Detectors
// are asked in chain order; the first verdict wins; with none, the stop is
// unexpected.
#ifndef GATEWAY_STOP_DETECTOR_CHAIN_H_
#define GATEWAY_STOP_DETECTOR_CHAIN_H_

#include <memory>
#include <vector>

#include "gateway/stop/detector.h"

namespace gateway {

using DetectorChain = std::vector<std::unique_ptr<StopReasonDetector>>;

Verdict ClassifyStop(const DetectorChain& chain, const StopContext& ctx);

}  // namespace gateway

#endif  // GATEWAY_STOP_DETECTOR_CHAIN_H_
