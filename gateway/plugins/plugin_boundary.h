// The boundary between the gateway and a runtime detector plugin, kept
// apart from the loading and the process isolation (plugin_loader.cc) so
// it can be fuzzed on its own (tests/fuzz/plugin_context_fuzzer.cc): the C
// view of a StopContext that a plugin reads, and the check of the answer a
// plugin writes back.
#ifndef GATEWAY_PLUGINS_PLUGIN_BOUNDARY_H_
#define GATEWAY_PLUGINS_PLUGIN_BOUNDARY_H_

#include <limits.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "gateway/plugins/plugin_abi.h"
#include "gateway/stop/stop_context.h"

namespace gateway {

inline constexpr size_t kEvidenceSize = 1024;

// What the child running detect() sends back: fixed size, so one write()
// of at most PIPE_BUF bytes delivers all of it or nothing.
struct DetectAnswer {
  int32_t stop_class = GATEWAY_STOP_NONE;
  char evidence[kEvidenceSize];
};
static_assert(sizeof(DetectAnswer) <= PIPE_BUF, "the answer must be one atomic pipe write");

// The C view of `ctx`; it points into `ctx`, which must outlive it.
gateway_stop_context CViewOf(const StopContext& ctx, bool dry_run);

// Checks an answer: a known class and, with a verdict, NUL-terminated
// UTF-8 evidence (control characters become spaces: records and log lines
// stay one line). nullopt when the plugin has no opinion.
absl::StatusOr<std::optional<Verdict>> VerdictFromAnswer(const DetectAnswer& answer);

}  // namespace gateway

#endif  // GATEWAY_PLUGINS_PLUGIN_BOUNDARY_H_
