// The detector chain; see detector_chain.h.
#include "gateway/stop/detector_chain.h"

#include "absl/strings/str_cat.h"

namespace gateway {

Verdict ClassifyStop(const DetectorChain& chain, const StopContext& ctx) {
  for (const auto& detector : chain) {
    std::optional<Verdict> verdict = detector->Detect(ctx);
    if (verdict.has_value()) {
      // The chain, not the detector, vouches for which detector decided.
      verdict->detector = std::string(detector->name());
      return *verdict;
    }
  }
  Verdict none;
  none.stop_class = StopClass::kUnexpected;
  none.evidence = absl::StrCat(ctx.DescribeSignal(), "; no detector recognised the sender");
  return none;
}

}  // namespace gateway
