// See marker_verdict.h.
#include "gateway/stop/marker_verdict.h"

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"

namespace gateway {

std::optional<Verdict> DecideByMarker(const StopContext& ctx, MarkerKind kind,
                                      StopClass stop_class) {
  if (ctx.markers == nullptr) return std::nullopt;
  std::optional<Marker> marker = ctx.markers->Find(kind, ctx.self, ctx.self_uid, ctx.now);
  if (!marker) return std::nullopt;
  ctx.markers->Consume(kind, *marker);
  Verdict verdict;
  verdict.stop_class = stop_class;
  verdict.evidence = absl::StrCat(
      ctx.DescribeSignal(), "; ", MarkerFileName(kind), " names this process (pid ",
      marker->target.pid, ", start tick ", marker->target.start_time_ticks,
      "), written by pid ", marker->writer_pid, " at ", FormatRfc3339(marker->written_at),
      marker->reason.empty() ? std::string() : absl::StrCat(", reason: ", marker->reason));
  return verdict;
}

}  // namespace gateway
