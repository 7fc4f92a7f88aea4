// libFuzzer target for the marker parser (SPEC 4.5): ParseMarker on any
// bytes, then WhyMarkerDoesNotApply for the process the marker names and
// for another one. Beyond "no crash, no sanitizer report", it checks that
// an accepted marker means what its JSON says: the identity fields are
// taken as written (no silent narrowing) and a marker always applies to
// the exact process it names while fresh, and never to another process.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "gateway/stop/markers.h"
#include "nlohmann/json.hpp"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<gateway::Marker> marker = gateway::ParseMarker(text);
  if (!marker.ok()) return 0;

  // The JSON's own numbers, read independently of the parser under test.
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  Check(j.is_object());
  Check(j["version"].get<int64_t>() == gateway::kMarkerVersion);
  Check(j["target_pid"].get<int64_t>() == marker->target.pid);
  Check(j["target_start_time"].get<uint64_t>() == marker->target.start_time_ticks);

  // Never for another process, whatever the time; for the named one while
  // fresh ("infinite-past" and "infinite-future" parse, but are never fresh).
  const gateway::ProcessIdentity& named = marker->target;
  gateway::ProcessIdentity reused_pid = named;
  reused_pid.start_time_ticks += 1;
  gateway::ProcessIdentity other_boot = named;
  other_boot.boot_id += "x";
  const absl::Time now = absl::Now();
  for (const gateway::ProcessIdentity* other : {&reused_pid, &other_boot}) {
    Check(gateway::WhyMarkerDoesNotApply(*marker, *other, now, absl::InfiniteDuration())
              .has_value());
  }
  if (marker->written_at != absl::InfinitePast() && marker->written_at != absl::InfiniteFuture()) {
    const absl::Time fresh = marker->written_at + absl::Seconds(1);
    Check(!gateway::WhyMarkerDoesNotApply(*marker, named, fresh, absl::Seconds(60)).has_value());
  }

  // What the gateway writes, it reads back unchanged.
  absl::StatusOr<gateway::Marker> again = gateway::ParseMarker(gateway::MarkerToJson(*marker));
  Check(again.ok());
  Check(again->target.pid == marker->target.pid);
  Check(again->target.start_time_ticks == marker->target.start_time_ticks);
  Check(again->target.boot_id == marker->target.boot_id);
  return 0;
}
