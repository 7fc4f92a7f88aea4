// The running sentinel and what it says about the previous run.
#include "gateway/stop/instance.h"

#include <unistd.h>

#include <filesystem>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class InstanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string root = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
    std::string path = absl::StrCat(root, "/instance-",
                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
    dir_.emplace(*StateDirectory::OpenOrCreate(path));
    self_ = *ReadProcessIdentity(getpid());
  }
  std::optional<StateDirectory> dir_;
  ProcessIdentity self_;
};

TEST_F(InstanceTest, FirstRunHasNoPrevious) {
  EXPECT_EQ(InspectPreviousRun(*dir_).exit, "none");
}

TEST_F(InstanceTest, SentinelOfADeadProcessMeansUncleanExit) {
  ProcessIdentity dead = self_;
  dead.start_time_ticks += 7;  // same pid, another process: long gone
  ASSERT_TRUE(WriteRunningSentinel(*dir_, dead, absl::Now()).ok());
  PreviousRun previous = InspectPreviousRun(*dir_);
  EXPECT_EQ(previous.exit, "unclean");
  ASSERT_TRUE(previous.pid.has_value());
  EXPECT_EQ(*previous.pid, dead.pid);
}

TEST_F(InstanceTest, SentinelOfALiveProcessIsAPredecessorNotACrash) {
  ASSERT_TRUE(WriteRunningSentinel(*dir_, self_, absl::Now()).ok());
  EXPECT_NE(InspectPreviousRun(*dir_).exit, "unclean");
}

TEST_F(InstanceTest, RecordWithoutSentinelIsACleanPreviousRun) {
  ASSERT_TRUE(dir_->WriteAtomically(kLastShutdownFile, R"({"class":"planned","pid":12})").ok());
  PreviousRun previous = InspectPreviousRun(*dir_);
  EXPECT_EQ(previous.exit, "clean");
  EXPECT_EQ(previous.stop_class, "planned");
  EXPECT_EQ(previous.pid, 12);
}

TEST_F(InstanceTest, SentinelIsRemovedOnlyByItsOwner) {
  ProcessIdentity other = self_;
  other.pid += 1;
  ASSERT_TRUE(WriteRunningSentinel(*dir_, other, absl::Now()).ok());
  RemoveRunningSentinelIfOurs(*dir_, self_);
  EXPECT_TRUE(dir_->Read(kRunningSentinel).ok());
  ASSERT_TRUE(WriteRunningSentinel(*dir_, self_, absl::Now()).ok());
  RemoveRunningSentinelIfOurs(*dir_, self_);
  EXPECT_FALSE(dir_->Read(kRunningSentinel).ok());
}

TEST_F(InstanceTest, InstanceInfoRoundTrips) {
  InstanceInfo info;
  info.identity = self_;
  info.started_at = absl::FromUnixMillis(1796000000123);
  info.state_dir = dir_->path();
  info.detectors = {"systemd", "interactive"};
  ASSERT_TRUE(WriteInstanceInfo(*dir_, info).ok());
  absl::StatusOr<InstanceInfo> read = ReadInstanceInfo(*dir_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->identity, self_);
  EXPECT_EQ(read->started_at, info.started_at);
  EXPECT_EQ(read->detectors, info.detectors);
}

TEST_F(InstanceTest, StopWithoutARecordIsKeptInTheSentinelInPlace) {
  ASSERT_TRUE(WriteRunningSentinel(*dir_, self_, absl::Now()).ok());
  EXPECT_EQ(dir_->Read(kRunningSentinel)->size(), kRunningSentinelBytes);
  StopRecord record;
  record.self = self_;
  record.verdict.stop_class = StopClass::kUnexpected;
  record.verdict.evidence = std::string(5000, 'e');  // does not fit: cut
  record.exit_code = 1;
  ASSERT_TRUE(RecordStopInRunningSentinel(*dir_, record, "write: No space left on device").ok());
  std::string text = *dir_->Read(kRunningSentinel);
  EXPECT_EQ(text.size(), kRunningSentinelBytes) << "rewritten in the space it had";
  nlohmann::json sentinel = *ParseJsonObject(text);
  EXPECT_EQ(sentinel["stopping"], true);
  EXPECT_EQ(sentinel["class"], "unexpected");
  // The next start (this process is still alive, so pretend it is not).
  sentinel["start_time"] = self_.start_time_ticks + 7;
  ASSERT_TRUE(dir_->WriteAtomically(kRunningSentinel, sentinel.dump()).ok());
  PreviousRun previous = InspectPreviousRun(*dir_);
  EXPECT_EQ(previous.exit, "unrecorded");
  EXPECT_EQ(previous.stop_class, "unexpected");
  EXPECT_EQ(previous.exit_code, 1);
  EXPECT_EQ(previous.record_error, "write: No space left on device");
}

TEST_F(InstanceTest, OnlyOurOwnSentinelIsRewritten) {
  ProcessIdentity other = self_;
  other.start_time_ticks += 7;
  ASSERT_TRUE(WriteRunningSentinel(*dir_, other, absl::Now()).ok());
  StopRecord record;
  record.self = self_;
  EXPECT_FALSE(RecordStopInRunningSentinel(*dir_, record, "full").ok());
  EXPECT_EQ(InspectPreviousRun(*dir_).exit, "unclean");
}

}  // namespace
}  // namespace gateway
