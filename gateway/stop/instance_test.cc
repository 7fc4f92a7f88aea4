// The running sentinel and what it says about the previous run.
#include "gateway/stop/instance.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class InstanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string root = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
    std::string path = absl::StrCat(root, "/instance-",
                                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::system(absl::StrCat("rm -rf ", path).c_str());
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

}  // namespace
}  // namespace gateway
