// CountRecordedStops: what the stop history says about earlier runs.
#include "gateway/stop/stop_history_metrics.h"

#include "gtest/gtest.h"
#include "gateway/base/json_util.h"

namespace gateway {
namespace {

nlohmann::json Record(const std::string& stop_class, const nlohmann::json& detector,
                      const std::string& previous_exit, const std::string& exited_at) {
  return {{"class", stop_class},
          {"detector", detector},
          {"previous_exit", previous_exit},
          {"exited_at", exited_at}};
}

TEST(CountRecordedStopsTest, CountsByClassAndDetectorAndUncleanFromPreviousExit) {
  std::vector<nlohmann::json> history = {
      Record("planned", "interactive", "none", "2026-12-01T10:00:00.000Z"),
      // This run found its predecessor's sentinel: one unclean death.
      Record("unexpected", nullptr, "unclean", "2026-12-01T11:00:00.500Z"),
      Record("planned", "interactive", "clean", "2026-12-01T10:30:00.000Z"),
  };
  PreviousRun own;
  own.exit = "unclean";  // this start found another one
  RecordedStops stops = CountRecordedStops(history, own);
  std::map<std::pair<std::string, std::string>, int64_t> expected = {
      {{"planned", "interactive"}, 2}, {{"unexpected", "none"}, 1}, {{"unclean", "none"}, 2}};
  EXPECT_EQ(stops.by_class_and_detector, expected);
  ASSERT_TRUE(stops.last_stop_at.has_value());
  EXPECT_EQ(FormatRfc3339(*stops.last_stop_at), "2026-12-01T11:00:00.500Z");
}

TEST(CountRecordedStopsTest, AnUncleanDeathSeenTwiceCountsOnce) {
  // The start after a SIGKILL appends an unclean_exit entry, and its own
  // record later names the same dead run as previous_run.
  nlohmann::json entry = {{"kind", "unclean_exit"}, {"pid", 41}, {"start_time", 900}};
  nlohmann::json record = {{"class", "planned"},
                           {"detector", "systemd"},
                           {"previous_run", {{"exit", "unclean"}, {"pid", 41}, {"start_time", 900}}}};
  nlohmann::json other = {{"kind", "unclean_exit"}, {"pid", 41}, {"start_time", 901}};
  nlohmann::json unrecorded = {{"kind", "unrecorded_stop"}, {"class", "unexpected"}, {"detector", nullptr}};
  PreviousRun own;
  own.exit = "unclean";
  own.pid = 41;
  own.start_time = 901;  // this start found `other`, already in the history
  RecordedStops stops = CountRecordedStops({entry, record, other, unrecorded}, own);
  std::map<std::pair<std::string, std::string>, int64_t> expected = {
      {{"planned", "systemd"}, 1}, {{"unexpected", "none"}, 1}, {{"unclean", "none"}, 2}};
  EXPECT_EQ(stops.by_class_and_detector, expected);
}

TEST(CountRecordedStopsTest, MistypedRecordsAreNotCounted) {
  std::vector<nlohmann::json> history = {
      nlohmann::json::array(),
      {{"class", 7}},
      {{"class", "bogus"}, {"detector", "x"}},
      {{"class", "takeover"}, {"detector", 3}, {"previous_exit", 1}, {"exited_at", "yesterday"}},
  };
  RecordedStops stops = CountRecordedStops(history, PreviousRun());
  std::map<std::pair<std::string, std::string>, int64_t> expected = {{{"takeover", "none"}, 1}};
  EXPECT_EQ(stops.by_class_and_detector, expected);
  EXPECT_FALSE(stops.last_stop_at.has_value());
}

}  // namespace
}  // namespace gateway
