// Writing and finding stop records when a predecessor and its successor
// both record (a takeover that overlaps the successor's own stop).
#include "gateway/stop/stop_record.h"

#include <unistd.h>

#include <filesystem>
#include <cstdlib>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class StopRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string root = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
    std::string path = absl::StrCat(root, "/stop-record-",
                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    dir_.emplace(*StateDirectory::OpenOrCreate(path));
    self_ = {.pid = 4000, .start_time_ticks = 1000, .boot_id = "boot-a"};
  }

  StopRecord RecordOf(const ProcessIdentity& who, StopClass stop_class) {
    StopRecord record;
    record.self = who;
    record.verdict.stop_class = stop_class;
    record.verdict.detector = "test";
    return record;
  }

  // A successor (started later) records its stop, then we, its
  // predecessor, record our takeover. Returns the successor.
  ProcessIdentity RecordSuccessorThenSelf() {
    ProcessIdentity successor = self_;
    successor.pid = 4100;
    successor.start_time_ticks = 1500;
    EXPECT_TRUE(WriteStopRecord(*dir_, RecordOf(successor, StopClass::kPlanned)).ok());
    EXPECT_TRUE(WriteStopRecord(*dir_, RecordOf(self_, StopClass::kTakeover)).ok());
    return successor;
  }

  nlohmann::json Last() { return *ParseJsonObject(*dir_->Read(kLastShutdownFile)); }

  std::vector<int> HistoryPids() {
    std::vector<int> pids;
    std::istringstream lines(*dir_->Read(kStopHistoryFile));
    for (std::string line; std::getline(lines, line);) {
      pids.push_back(ParseJsonObject(line)->value("pid", 0));
    }
    return pids;
  }

  std::optional<StateDirectory> dir_;
  ProcessIdentity self_;
};

TEST_F(StopRecordTest, LaterInstanceOnTheSameBootIsRecognised) {
  ProcessIdentity later = self_;
  later.pid = 4100;
  later.start_time_ticks = 1500;
  EXPECT_TRUE(IsRecordOfALaterInstance(StopRecordToJson(RecordOf(later, StopClass::kPlanned)),
                                       self_));
  ProcessIdentity earlier = later;
  earlier.start_time_ticks = 900;
  EXPECT_FALSE(IsRecordOfALaterInstance(StopRecordToJson(RecordOf(earlier, StopClass::kPlanned)),
                                        self_));
  // Start times of another boot say nothing about order.
  ProcessIdentity other_boot = later;
  other_boot.boot_id = "boot-b";
  EXPECT_FALSE(IsRecordOfALaterInstance(
      StopRecordToJson(RecordOf(other_boot, StopClass::kPlanned)), self_));
  // Our own record, and anything unreadable, is not later.
  EXPECT_FALSE(
      IsRecordOfALaterInstance(StopRecordToJson(RecordOf(self_, StopClass::kPlanned)), self_));
  EXPECT_FALSE(IsRecordOfALaterInstance(nlohmann::json::parse(R"({"boot_id":"boot-a"})"), self_));
  EXPECT_FALSE(IsRecordOfALaterInstance(
      nlohmann::json::parse(R"({"boot_id":"boot-a","start_time":"9999"})"), self_));
  EXPECT_FALSE(IsRecordOfALaterInstance(
      nlohmann::json::parse(R"({"boot_id":"boot-a","start_time":-5})"), self_));
  EXPECT_FALSE(IsRecordOfALaterInstance(nlohmann::json::array(), self_));
}

TEST_F(StopRecordTest, PredecessorRecordingAfterItsSuccessorGoesToTheHistoryOnly) {
  ProcessIdentity successor = RecordSuccessorThenSelf();

  EXPECT_EQ(Last()["pid"], successor.pid);
  EXPECT_EQ(Last()["class"], "planned");
  EXPECT_EQ(HistoryPids(), (std::vector<int>{successor.pid, self_.pid}));
  nlohmann::json ours = FindStopRecord(*dir_, self_);
  ASSERT_TRUE(ours.is_object());
  EXPECT_EQ(ours["class"], "takeover");
  EXPECT_EQ(FindStopRecord(*dir_, successor)["class"], "planned");
}

TEST_F(StopRecordTest, EachNewerInstanceReplacesTheLastRecord) {
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(self_, StopClass::kTakeover)).ok());
  ProcessIdentity next = self_;
  next.pid = 4100;
  next.start_time_ticks = 1500;
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(next, StopClass::kUnexpected)).ok());
  EXPECT_EQ(Last()["pid"], next.pid);
  // After a reboot start times restart: the newest write wins.
  ProcessIdentity after_reboot = {.pid = 300, .start_time_ticks = 10, .boot_id = "boot-b"};
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(after_reboot, StopClass::kPlanned)).ok());
  EXPECT_EQ(Last()["pid"], after_reboot.pid);
  EXPECT_EQ(HistoryPids(), (std::vector<int>{self_.pid, next.pid, after_reboot.pid}));
}

TEST_F(StopRecordTest, UnreadableLastRecordIsReplaced) {
  ASSERT_TRUE(dir_->WriteAtomically(kLastShutdownFile, "{\"pid\": 12, \"boot").ok());
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(self_, StopClass::kPlanned)).ok());
  EXPECT_EQ(Last()["pid"], self_.pid);
}

TEST_F(StopRecordTest, FindsNothingForAProcessThatLeftNoRecord) {
  EXPECT_TRUE(FindStopRecord(*dir_, self_).is_null());
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(self_, StopClass::kPlanned)).ok());
  ProcessIdentity same_pid_other_process = self_;
  same_pid_other_process.start_time_ticks = 2000;
  EXPECT_TRUE(FindStopRecord(*dir_, same_pid_other_process).is_null());
  // A pid that only wraps to ours (2^32 + pid) is not ours.
  nlohmann::json wrapped = StopRecordToJson(RecordOf(self_, StopClass::kPlanned));
  wrapped["pid"] = (uint64_t{1} << 32) + static_cast<uint64_t>(self_.pid);
  ASSERT_TRUE(dir_->WriteAtomically(kLastShutdownFile, wrapped.dump()).ok());
  ASSERT_TRUE(dir_->Remove(kStopHistoryFile).ok());
  EXPECT_TRUE(FindStopRecord(*dir_, self_).is_null());
}

TEST_F(StopRecordTest, FindsARecordInTheRotatedHistory) {
  ProcessIdentity successor = RecordSuccessorThenSelf();
  ASSERT_EQ(renameat(dir_->fd(), kStopHistoryFile, dir_->fd(),
                     absl::StrCat(kStopHistoryFile, ".1").c_str()),
            0);
  EXPECT_EQ(FindStopRecord(*dir_, self_)["class"], "takeover");
}

TEST_F(StopRecordTest, HistoryIsReadOldestFirstFromBothFilesSkippingTornLines) {
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(self_, StopClass::kPlanned)).ok());
  ASSERT_EQ(renameat(dir_->fd(), kStopHistoryFile, dir_->fd(),
                     absl::StrCat(kStopHistoryFile, ".1").c_str()),
            0);
  ProcessIdentity next = self_;
  next.pid = 4200;
  next.start_time_ticks = 3000;
  // A torn tail (a crash mid-append) before the next record.
  ASSERT_TRUE(dir_->WriteAtomically(kStopHistoryFile, "{\"version\":1,\"pid\":9", 0644).ok());
  ASSERT_TRUE(WriteStopRecord(*dir_, RecordOf(next, StopClass::kUnexpected)).ok());
  std::vector<nlohmann::json> history = ReadStopHistory(*dir_);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0]["pid"], self_.pid);
  EXPECT_EQ(history[1]["pid"], next.pid);
  EXPECT_EQ(*dir_->Read(kStopHistoryFile),
            "{\"version\":1,\"pid\":9\n" + DumpJson(StopRecordToJson(RecordOf(next, StopClass::kUnexpected))) + "\n");
}

TEST_F(StopRecordTest, PreviousRunSurvivesItsJson) {
  PreviousRun p;
  p.exit = "unrecorded";
  p.pid = 41;
  p.start_time = 77;
  p.boot_id = "boot-a";
  p.started_at = "2026-12-07T00:00:00.000Z";
  p.stop_class = "unexpected";
  p.exit_code = 1;
  p.last_alive_at = "2026-12-07T01:00:00.000Z";
  p.record_error = "No space left on device";
  PreviousRun back = PreviousRunFromJson(nlohmann::json(PreviousRunToJson(p)));
  EXPECT_EQ(PreviousRunToJson(back), PreviousRunToJson(p));
  EXPECT_EQ(DescribePreviousRun(p, "previous run"),
            "previous run (pid 41) stopped, its record could not be written: No space left on "
            "device; class as logged: unexpected (no detector, exit 1, at 2026-12-07T01:00:00.000Z)");
  // Mistyped fields of a damaged file are dropped, never thrown on.
  PreviousRun damaged = PreviousRunFromJson(
      nlohmann::json{{"exit", 3}, {"pid", "x"}, {"exit_code", 1000}, {"class", {1, 2}}});
  EXPECT_EQ(damaged.exit, "none");
  EXPECT_FALSE(damaged.pid.has_value());
  EXPECT_FALSE(damaged.exit_code.has_value());
  EXPECT_EQ(damaged.stop_class, "");
}

}  // namespace
}  // namespace gateway
