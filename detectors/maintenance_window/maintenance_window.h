// Weekly maintenance windows as an operator declares them in
// GATEWAY_MAINTENANCE_WINDOW, e.g. "Sun 02:00-04:00,Wed 23:30-00:15" (UTC;
// a window whose end is not after its start ends on the next day). Used by
// the maintenance_window detector; parsing lives here so it can be tested
// on its own.
#ifndef DETECTORS_MAINTENANCE_WINDOW_MAINTENANCE_WINDOW_H_
#define DETECTORS_MAINTENANCE_WINDOW_MAINTENANCE_WINDOW_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway {

// The environment variable the detector reads (as captured at start-up).
inline constexpr char kMaintenanceWindowEnv[] = "GATEWAY_MAINTENANCE_WINDOW";

struct WeeklyWindow {
  int start_minute_of_week = 0;  // Monday 00:00 UTC is 0
  int length_minutes = 0;        // 1 .. one week
  std::string text;              // as declared: "Sun 02:00-04:00"
};

// Parses a comma-separated list of "DAY HH:MM-HH:MM" (DAY: Mon..Sun or
// "daily", case-insensitive). InvalidArgument names the bad entry.
absl::StatusOr<std::vector<WeeklyWindow>> ParseMaintenanceWindows(absl::string_view text);

// The first window that contains `now`, if any.
std::optional<WeeklyWindow> WindowContaining(const std::vector<WeeklyWindow>& windows,
                                             absl::Time now);

}  // namespace gateway

#endif  // DETECTORS_MAINTENANCE_WINDOW_MAINTENANCE_WINDOW_H_
