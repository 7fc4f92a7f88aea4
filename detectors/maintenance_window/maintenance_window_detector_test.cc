// The maintenance_window detector and its window parser, on fabricated
// contexts.
#include "detectors/maintenance_window/maintenance_window.h"

#include "absl/time/civil_time.h"
#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

// 2026-12-06 is a Sunday.
absl::Time SundayUtc(int hour, int minute) {
  return absl::FromCivil(absl::CivilMinute(2026, 12, 6, hour, minute), absl::UTCTimeZone());
}

StopContext ContextWithWindow(const std::string& windows, absl::Time now) {
  StopContext ctx = ContextForTest();
  ctx.environment[kMaintenanceWindowEnv] = windows;
  ctx.now = now;
  return ctx;
}

TEST(MaintenanceWindowDetectorTest, StopInsideTheWindowIsPlanned) {
  StopContext ctx = ContextWithWindow("Sun 02:00-04:00", SundayUtc(2, 13));
  std::optional<Verdict> verdict = DetectorForTest("maintenance_window")->Detect(ctx);
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
  EXPECT_EQ(verdict->evidence,
            "SIGTERM from pid 777 (bash, uid 0) at Sun 02:13 UTC, inside the maintenance "
            "window 'Sun 02:00-04:00' (GATEWAY_MAINTENANCE_WINDOW)");
}

TEST(MaintenanceWindowDetectorTest, StopOutsideTheWindowHasNoOpinion) {
  EXPECT_FALSE(DetectorForTest("maintenance_window")
                   ->Detect(ContextWithWindow("Sun 02:00-04:00", SundayUtc(4, 0)))
                   .has_value());
  EXPECT_FALSE(DetectorForTest("maintenance_window")
                   ->Detect(ContextWithWindow("Sun 02:00-04:00", SundayUtc(1, 59)))
                   .has_value());
  EXPECT_FALSE(DetectorForTest("maintenance_window")
                   ->Detect(ContextWithWindow("Mon 02:00-04:00", SundayUtc(2, 30)))
                   .has_value());
}

TEST(MaintenanceWindowDetectorTest, WithoutADeclaredWindowThereIsNoOpinion) {
  StopContext ctx = ContextForTest();
  ctx.now = SundayUtc(3, 0);
  EXPECT_FALSE(DetectorForTest("maintenance_window")->Detect(ctx).has_value());
}

TEST(MaintenanceWindowDetectorTest, MalformedDeclarationHasNoOpinion) {
  for (const char* bad : {"", "Sun", "Sun 2:00-04:00", "Funday 02:00-04:00",
                          "Sun 02:00-24:00", "Sun 02:00", ","}) {
    EXPECT_FALSE(DetectorForTest("maintenance_window")
                     ->Detect(ContextWithWindow(bad, SundayUtc(3, 0)))
                     .has_value())
        << bad;
  }
}

TEST(MaintenanceWindowParseTest, MalformedEntryIsNamedInTheError) {
  absl::StatusOr<std::vector<WeeklyWindow>> windows =
      ParseMaintenanceWindows("Sun 02:00-04:00, Sat 25:00-26:00");
  ASSERT_FALSE(windows.ok());
  EXPECT_NE(windows.status().message().find("'Sat 25:00-26:00' is not a window"),
            std::string::npos)
      << windows.status().message();
}

TEST(MaintenanceWindowParseTest, WindowEndingBeforeItsStartRunsPastMidnight) {
  absl::StatusOr<std::vector<WeeklyWindow>> windows = ParseMaintenanceWindows("Sat 23:30-00:15");
  ASSERT_TRUE(windows.ok()) << windows.status();
  EXPECT_TRUE(WindowContaining(*windows, SundayUtc(0, 10)).has_value());
  EXPECT_FALSE(WindowContaining(*windows, SundayUtc(0, 15)).has_value());
}

TEST(MaintenanceWindowParseTest, SundayToMondayWrapsAroundTheWeek) {
  absl::StatusOr<std::vector<WeeklyWindow>> windows = ParseMaintenanceWindows("sun 23:00-01:00");
  ASSERT_TRUE(windows.ok()) << windows.status();
  EXPECT_TRUE(WindowContaining(*windows, SundayUtc(23, 30)).has_value());
  EXPECT_TRUE(WindowContaining(*windows, SundayUtc(24, 30)).has_value());  // Mon 00:30
}

TEST(MaintenanceWindowParseTest, DailyAndListsDeclareSeveralWindows) {
  absl::StatusOr<std::vector<WeeklyWindow>> windows =
      ParseMaintenanceWindows("daily 12:00-12:05, Wed 03:00-04:00");
  ASSERT_TRUE(windows.ok()) << windows.status();
  EXPECT_EQ(windows->size(), 8u);
  std::optional<WeeklyWindow> noon = WindowContaining(*windows, SundayUtc(12, 1));
  ASSERT_TRUE(noon.has_value());
  EXPECT_EQ(noon->text, "daily 12:00-12:05");
}

}  // namespace
}  // namespace gateway
