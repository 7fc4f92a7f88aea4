// The systemd detector on fabricated contexts, including the cases the
// naive rule "INVOCATION_ID set ⇒ planned" gets wrong.
#include <signal.h>

#include "gateway/stop/detector_chain.h"
#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class SystemdDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_ = ContextForTest();
    ctx_.environment = {{"INVOCATION_ID", "5d3c1f0e9a8b4c7d"},
                        {"SYSTEMD_EXEC_PID", "4242"},
                        {"JOURNAL_STREAM", "8:12345"}};
    SetParentForTest(ctx_, 1, "systemd", {"/sbin/init"});
  }
  std::optional<Verdict> Detect() { return detector_->Detect(ctx_); }

  std::unique_ptr<StopReasonDetector> detector_ = DetectorForTest("systemd");
  StopContext ctx_;
};

TEST_F(SystemdDetectorTest, SystemctlStopIsPlanned) {
  SetSenderForTest(ctx_, 1, "systemd");
  std::optional<Verdict> verdict = Detect();
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
  EXPECT_NE(verdict->evidence.find("SYSTEMD_EXEC_PID matches"), std::string::npos)
      << verdict->evidence;
}

TEST_F(SystemdDetectorTest, ExternalKillIsNotPlanned) {
  // kill -TERM $MAINPID from a shell: INVOCATION_ID is set, but the sender
  // is the shell. The naive rule would call this planned.
  SetSenderForTest(ctx_, 3131, "bash");
  EXPECT_FALSE(Detect().has_value());
  DetectorChain chain;
  chain.push_back(DetectorForTest("systemd"));
  EXPECT_EQ(ClassifyStop(chain, ctx_).stop_class, StopClass::kUnexpected);
}

TEST_F(SystemdDetectorTest, InheritedInvocationIdIsNotOurs) {
  // A process started from a unit's shell inherits INVOCATION_ID, but
  // SYSTEMD_EXEC_PID names the unit's main process, not us.
  ctx_.environment["SYSTEMD_EXEC_PID"] = "999";
  SetSenderForTest(ctx_, 1, "systemd");
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SystemdDetectorTest, WithoutInvocationIdNothingIsClaimed) {
  ctx_.environment.erase("INVOCATION_ID");
  SetSenderForTest(ctx_, 1, "systemd");
  EXPECT_FALSE(Detect().has_value());
  ctx_.environment["INVOCATION_ID"] = "";
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SystemdDetectorTest, MissingExecPidIsAcceptedFromTheManager) {
  // systemd before v248 does not set SYSTEMD_EXEC_PID.
  ctx_.environment.erase("SYSTEMD_EXEC_PID");
  SetSenderForTest(ctx_, 1, "systemd");
  std::optional<Verdict> verdict = Detect();
  ASSERT_TRUE(verdict.has_value());
  EXPECT_NE(verdict->evidence.find("SYSTEMD_EXEC_PID not set"), std::string::npos);
}

TEST_F(SystemdDetectorTest, PidOneThatIsNotSystemdIsNotTheManager) {
  SetSenderForTest(ctx_, 1, "tini");
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SystemdDetectorTest, UserManagerStopIsPlanned) {
  SetParentForTest(ctx_, 812, "systemd", {"/lib/systemd/systemd", "--user"},
                   /*sent_by_parent=*/true);
  std::optional<Verdict> verdict = Detect();
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
  EXPECT_NE(verdict->evidence.find("user manager"), std::string::npos);
}

TEST_F(SystemdDetectorTest, KillUnderUserManagerIsNotPlanned) {
  SetParentForTest(ctx_, 812, "systemd", {"/lib/systemd/systemd", "--user"});
  SetSenderForTest(ctx_, 3131, "bash");
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SystemdDetectorTest, ParentNamedSystemdWithoutUserFlagIsNotAManager) {
  SetParentForTest(ctx_, 812, "systemd", {"./systemd"}, /*sent_by_parent=*/true);
  EXPECT_FALSE(Detect().has_value());
}

TEST_F(SystemdDetectorTest, KernelSignalIsNotClaimed) {
  SetSenderForTest(ctx_, 1, "systemd");
  ctx_.signal.code = SI_KERNEL;
  EXPECT_FALSE(Detect().has_value());
}

}  // namespace
}  // namespace gateway
