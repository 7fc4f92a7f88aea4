// Runtime detector plugins: --detector_plugin=/path/libx.so loads shared
// libraries that implement the C ABI in plugin_abi.h, checks each one at
// start-up, and adds it to the registry as a detector whose origin is the
// library's path (so a name clash with a built-in is a Build() error).
//
// Isolation: every detect() call runs in a forked child with a timeout. A
// plugin that crashes, hangs, exits or returns garbage during a real stop
// has no opinion (logged as a warning); the chain goes on and the stop
// record is written as always. At start-up, the same failures in the probe
// call are configuration errors.
#ifndef GATEWAY_PLUGINS_PLUGIN_LOADER_H_
#define GATEWAY_PLUGINS_PLUGIN_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/stop/detector_registry.h"

namespace gateway {

struct PluginOptions {
  // How long one detect() call may take before it is killed.
  absl::Duration detect_timeout = absl::Seconds(2);
  // Tell plugins not to change anything (gatewayctl explain).
  bool dry_run = false;
};

// The absolute paths named by --detector_plugin (repeated or
// comma-separated), in order.
std::vector<std::string> DetectorPluginPathsFromFlags();
// A --detector_plugin_timeout value ("2s", "300ms"); InvalidArgument if it
// is not a positive duration.
absl::StatusOr<absl::Duration> ParsePluginTimeout(const std::string& text);
// --detector_plugin_timeout as options.
absl::StatusOr<PluginOptions> PluginOptionsFromFlags();

// Loads the plugins named by --detector_plugin with
// --detector_plugin_timeout. An error is a configuration error: a missing
// file, a dlopen failure, a wrong ABI version, no entry symbol, a malformed
// descriptor, or a failed start-up probe (crash, timeout, garbage answer).
absl::Status AddRuntimePlugins(DetectorRegistry::Builder* builder);

// The same for explicit paths (gatewayctl explain rebuilds an instance's
// chain from instance.json).
absl::Status AddRuntimePlugins(const std::vector<std::string>& paths,
                               const PluginOptions& options,
                               DetectorRegistry::Builder* builder);

}  // namespace gateway

#endif  // GATEWAY_PLUGINS_PLUGIN_LOADER_H_
