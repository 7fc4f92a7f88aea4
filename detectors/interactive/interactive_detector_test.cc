// The interactive detector on fabricated contexts.
#include <signal.h>

#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(InteractiveDetectorTest, CtrlCFromTheTerminalIsPlanned) {
  StopContext ctx = ContextForTest();
  ctx.signal.signo = SIGINT;
  ctx.signal.code = SI_KERNEL;
  ctx.signal.sender_pid = 0;
  std::optional<Verdict> verdict = DetectorForTest("interactive")->Detect(ctx);
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
  EXPECT_EQ(verdict->evidence, "SIGINT from the terminal (Ctrl-C)");
}

TEST(InteractiveDetectorTest, SigintFromAProcessIsPlanned) {
  StopContext ctx = ContextForTest();
  ctx.signal.signo = SIGINT;
  std::optional<Verdict> verdict = DetectorForTest("interactive")->Detect(ctx);
  ASSERT_TRUE(verdict.has_value());
  EXPECT_NE(verdict->evidence.find("pid 777"), std::string::npos) << verdict->evidence;
}

TEST(InteractiveDetectorTest, SigtermIsNotClaimed) {
  StopContext ctx = ContextForTest();
  EXPECT_FALSE(DetectorForTest("interactive")->Detect(ctx).has_value());
  ctx.signal.signo = SIGQUIT;
  EXPECT_FALSE(DetectorForTest("interactive")->Detect(ctx).has_value());
}

}  // namespace
}  // namespace gateway
