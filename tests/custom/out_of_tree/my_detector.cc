// my_detector: a stop signal sent by our deploy tool, a program named
// "deployer", is planned.
#include "gateway/stop/detector_registry.h"

namespace my_deployment {
namespace {

class DeployerDetector : public gateway::StopReasonDetector {
 public:
  absl::string_view name() const override { return "my_detector"; }

  std::optional<gateway::Verdict> Detect(const gateway::StopContext& ctx) override {
    if (!ctx.signal.SentByProcess() || ctx.sender.comm != "deployer") return std::nullopt;
    gateway::Verdict verdict;
    verdict.stop_class = gateway::StopClass::kPlanned;
    verdict.evidence = ctx.DescribeSignal() + "; the deployer stops us during a release";
    return verdict;
  }
};

}  // namespace

GATEWAY_REGISTER_DETECTOR("my_detector", DeployerDetector);

}  // namespace my_deployment
