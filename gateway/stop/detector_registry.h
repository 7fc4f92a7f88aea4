// The detector registry: plugins announce themselves by name (statically,
// with GATEWAY_REGISTER_DETECTOR, or at run time from a shared library),
// the registry is built and frozen once in main() before any signal is
// read, and the chain is then made from it in the order --detectors gives.
// After the freeze nothing registers or reorders.
#ifndef GATEWAY_STOP_DETECTOR_REGISTRY_H_
#define GATEWAY_STOP_DETECTOR_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/stop/detector.h"

namespace gateway {

using DetectorFactory = std::function<std::unique_ptr<StopReasonDetector>()>;

struct DetectorRegistration {
  std::string name;
  DetectorFactory factory;
  std::string origin;  // where it came from: "built-in", a plugin path
};

class DetectorRegistry {
 public:
  // Collects registrations, then checks them all at once in Build().
  class Builder {
   public:
    // Starts with everything GATEWAY_REGISTER_DETECTOR linked in.
    static Builder FromStaticRegistrations();
    void Add(DetectorRegistration registration);
    // Fails (InvalidArgument) on an empty or malformed name, a name
    // registered twice, or a factory whose detector reports another name.
    // Freezes static registration: a later one is a fatal error.
    absl::StatusOr<DetectorRegistry> Build() &&;

   private:
    std::vector<DetectorRegistration> registrations_;
  };

  // Names in registration order (built-ins sorted by name, then plugins).
  std::vector<std::string> Names() const;
  bool Contains(const std::string& name) const;
  const DetectorRegistration* Find(const std::string& name) const;

  // One detector per name, in the given order. Fails (InvalidArgument) on
  // an unknown name, a name listed twice, or an empty list.
  absl::StatusOr<std::vector<std::unique_ptr<StopReasonDetector>>> MakeChain(
      const std::vector<std::string>& names) const;

 private:
  std::vector<DetectorRegistration> registrations_;
};

// The chain used when --detectors is not given (SPEC 4.4).
const std::vector<std::string>& DefaultDetectorOrder();

// Parses a comma-separated --detectors value: "a,b , c" -> {a, b, c}.
std::vector<std::string> SplitDetectorList(const std::string& text);

namespace internal {
// Used by GATEWAY_REGISTER_DETECTOR at static-initialisation time.
struct StaticDetectorRegistrar {
  StaticDetectorRegistrar(const char* name, DetectorFactory factory);
};
}  // namespace internal

}  // namespace gateway

// Registers `Class` (default-constructible StopReasonDetector) as `name`.
// Put it in the detector's .cc file, in a library built with
// gateway_detector() (detectors/detectors.bzl), which sets alwayslink so the
// registration reaches every binary that depends on it.
#define GATEWAY_REGISTER_DETECTOR(name, Class)                                 \
  static ::gateway::internal::StaticDetectorRegistrar                          \
      gateway_detector_registrar_##Class(                                       \
          name, [] { return std::unique_ptr<::gateway::StopReasonDetector>(    \
                         new Class()); })

#endif  // GATEWAY_STOP_DETECTOR_REGISTRY_H_
