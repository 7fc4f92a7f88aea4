// The supervisor detector on fabricated contexts.
#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class SupervisorDetectorTest : public ::testing::Test {
 protected:
  std::optional<Verdict> Detect() { return detector_->Detect(ctx_); }
  std::unique_ptr<StopReasonDetector> detector_ = DetectorForTest("supervisor");
  StopContext ctx_ = ContextForTest();
};

TEST_F(SupervisorDetectorTest, StopFromEachSupervisorIsPlanned) {
  for (const char* supervisor : {"s6-supervise", "runsv", "supervisord"}) {
    SetParentForTest(ctx_, 300, supervisor, {}, /*sent_by_parent=*/true);
    std::optional<Verdict> verdict = Detect();
    ASSERT_TRUE(verdict.has_value()) << supervisor;
    EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
    EXPECT_NE(verdict->evidence.find(supervisor), std::string::npos);
  }
}

TEST_F(SupervisorDetectorTest, SupervisordRunByAnInterpreterIsRecognised) {
  SetParentForTest(ctx_, 300, "python3", {"/usr/bin/python3", "/usr/bin/supervisord", "-n"},
                   /*sent_by_parent=*/true);
  ASSERT_TRUE(Detect().has_value());
}

TEST_F(SupervisorDetectorTest, KillFromElsewhereUnderASupervisorIsNotPlanned) {
  SetParentForTest(ctx_, 300, "runsv");
  SetSenderForTest(ctx_, 3131, "bash");
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SupervisorDetectorTest, ParentThatIsNotASupervisorIsNotClaimed) {
  SetParentForTest(ctx_, 300, "bash", {"bash"}, /*sent_by_parent=*/true);
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SupervisorDetectorTest, SupervisorThatIsNotOurParentIsNotClaimed) {
  SetParentForTest(ctx_, 300, "bash");
  SetSenderForTest(ctx_, 301, "s6-supervise");
  EXPECT_FALSE(Detect().has_value());
}

}  // namespace
}  // namespace gateway
