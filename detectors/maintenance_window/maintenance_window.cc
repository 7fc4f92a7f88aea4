// Parsing and matching of weekly maintenance windows; see maintenance_window.h.
#include "detectors/maintenance_window/maintenance_window.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"

namespace gateway {
namespace {

constexpr int kMinutesPerDay = 24 * 60;
constexpr int kMinutesPerWeek = 7 * kMinutesPerDay;
constexpr const char* kDayNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

// "02:00" -> 120.
std::optional<int> ParseClock(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  int hours = 0, minutes = 0;
  if (parts.size() != 2 || parts[0].size() != 2 || parts[1].size() != 2 ||
      !absl::SimpleAtoi(parts[0], &hours) || !absl::SimpleAtoi(parts[1], &minutes) ||
      hours < 0 || hours > 23 || minutes < 0 || minutes > 59) {
    return std::nullopt;
  }
  return hours * 60 + minutes;
}

// The days an entry applies to: {0..6} for "daily", {n} for a day name.
std::optional<std::vector<int>> ParseDays(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "daily") return std::vector<int>{0, 1, 2, 3, 4, 5, 6};
  for (int day = 0; day < 7; ++day) {
    if (lower == kDayNames[day]) return std::vector<int>{day};
  }
  return std::nullopt;
}

int WeekdayIndex(absl::Weekday weekday) {
  switch (weekday) {
    case absl::Weekday::monday: return 0;
    case absl::Weekday::tuesday: return 1;
    case absl::Weekday::wednesday: return 2;
    case absl::Weekday::thursday: return 3;
    case absl::Weekday::friday: return 4;
    case absl::Weekday::saturday: return 5;
    case absl::Weekday::sunday: return 6;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<WeeklyWindow>> ParseMaintenanceWindows(absl::string_view text) {
  std::vector<WeeklyWindow> windows;
  for (absl::string_view raw : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    std::vector<absl::string_view> fields = absl::StrSplit(entry, ' ', absl::SkipEmpty());
    std::optional<std::vector<int>> days;
    std::optional<int> start, end;
    if (fields.size() == 2) {
      std::vector<absl::string_view> range = absl::StrSplit(fields[1], '-');
      days = ParseDays(fields[0]);
      if (range.size() == 2) {
        start = ParseClock(range[0]);
        end = ParseClock(range[1]);
      }
    }
    if (!days || !start || !end) {
      return absl::InvalidArgumentError(absl::StrCat(
          kMaintenanceWindowEnv, ": '", entry,
          "' is not a window; use DAY HH:MM-HH:MM in UTC, e.g. 'Sun 02:00-04:00'"));
    }
    int length = *end > *start ? *end - *start : *end + kMinutesPerDay - *start;
    for (int day : *days) {
      windows.push_back({day * kMinutesPerDay + *start, length, std::string(entry)});
    }
  }
  if (windows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kMaintenanceWindowEnv, " is set but declares no window"));
  }
  return windows;
}

std::optional<WeeklyWindow> WindowContaining(const std::vector<WeeklyWindow>& windows,
                                             absl::Time now) {
  absl::CivilMinute minute = absl::ToCivilMinute(now, absl::UTCTimeZone());
  int now_minute = WeekdayIndex(absl::GetWeekday(absl::CivilDay(minute))) * kMinutesPerDay +
                   minute.hour() * 60 + minute.minute();
  for (const WeeklyWindow& window : windows) {
    int since_start =
        (now_minute - window.start_minute_of_week + kMinutesPerWeek) % kMinutesPerWeek;
    if (since_start < window.length_minutes) return window;
  }
  return std::nullopt;
}

}  // namespace gateway
