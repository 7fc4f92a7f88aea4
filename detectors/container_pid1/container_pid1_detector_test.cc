// The container_pid1 detector on fabricated contexts.
#include <signal.h>

#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class ContainerPid1DetectorTest : public ::testing::Test {
 protected:
  std::optional<Verdict> Detect() { return detector_->Detect(ctx_); }
  std::unique_ptr<StopReasonDetector> detector_ = DetectorForTest("container_pid1");
  StopContext ctx_ = ContextForTest();
};

TEST_F(ContainerPid1DetectorTest, StopFromOutsideTheNamespaceIsPlanned) {
  ctx_.self.pid = 1;
  ctx_.parent.pid = 0;
  SetSenderForTest(ctx_, 0, "");
  std::optional<Verdict> verdict = Detect();
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
}

TEST_F(ContainerPid1DetectorTest, KillFromInsideTheContainerIsNotPlanned) {
  ctx_.self.pid = 1;
  SetSenderForTest(ctx_, 27, "sh");  // podman exec gw kill -TERM 1
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(ContainerPid1DetectorTest, PidZeroWhenNotPid1IsNotClaimed) {
  SetSenderForTest(ctx_, 0, "");
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(ContainerPid1DetectorTest, KernelSignalToPid1IsNotClaimed) {
  ctx_.self.pid = 1;
  SetSenderForTest(ctx_, 0, "");
  ctx_.signal.code = SI_KERNEL;
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(ContainerPid1DetectorTest, EveryKnownInitShimIsRecognised) {
  for (const char* shim : {"tini", "dumb-init", "catatonit", "docker-init", "podman-init"}) {
    SetParentForTest(ctx_, 1, shim, {}, /*sent_by_parent=*/true);
    std::optional<Verdict> verdict = Detect();
    ASSERT_TRUE(verdict.has_value()) << shim;
    EXPECT_NE(verdict->evidence.find(shim), std::string::npos);
  }
}

TEST_F(ContainerPid1DetectorTest, UnknownParentAtPid1IsNotAShim) {
  SetParentForTest(ctx_, 1, "bash", {}, /*sent_by_parent=*/true);
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(ContainerPid1DetectorTest, ShimThatIsNotPid1IsNotClaimed) {
  SetParentForTest(ctx_, 55, "tini", {}, /*sent_by_parent=*/true);
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(ContainerPid1DetectorTest, KillFromASiblingUnderAShimIsNotPlanned) {
  SetParentForTest(ctx_, 1, "tini");
  SetSenderForTest(ctx_, 31, "sh");
  EXPECT_FALSE(Detect().has_value());
}

}  // namespace
}  // namespace gateway
