// libFuzzer target for the route configuration parsers (SPEC 3):
// ParseRouteConfig (the JSON --config file, re-read on SIGHUP) and
// ParseRouteFlag (--route) on any bytes. An accepted configuration must be
// usable: distinct routes, upstream ports non-zero, and every address
// printable and parseable back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gateway/dataplane/routes.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckUsable(const std::vector<gateway::Route>& routes) {
  Check(gateway::CheckRoutesAreDistinct(routes).ok());
  for (const gateway::Route& route : routes) {
    Check(!route.name.empty());
    Check(route.upstream.port() != 0);
    Check(route.connect_timeout > absl::ZeroDuration());
    for (const gateway::SocketAddress* address : {&route.listen, &route.upstream}) {
      absl::StatusOr<gateway::SocketAddress> again =
          gateway::SocketAddress::Parse(address->ToString());
      Check(again.ok());
      Check(again->ToString() == address->ToString());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<gateway::Route>> from_config =
      gateway::ParseRouteConfig(text, "fuzz.json");
  if (from_config.ok()) CheckUsable(*from_config);
  absl::StatusOr<std::vector<gateway::Route>> from_flag = gateway::ParseRouteFlag(text);
  if (from_flag.ok()) CheckUsable(*from_flag);
  return 0;
}
