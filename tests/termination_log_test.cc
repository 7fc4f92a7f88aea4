// Black-box: the real //gateway writes the Kubernetes termination message
// (--termination_log) at stop, and leaves /dev alone outside Kubernetes.
#include <signal.h>

#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

std::string TestName() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

TEST(TerminationLogTest, StopWritesClassDetectorAndEvidence) {
  std::string path = FreshTempDir(TestName()) + "/termination-log";
  Gateway::Options options;
  options.flags = {"--termination_log=" + path};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGINT);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << gw.Log();
  std::string message = ReadText(path);
  EXPECT_EQ(message.rfind("planned by interactive, exit 0: SIGINT from pid ", 0), 0u) << message;
  EXPECT_LE(message.size(), 4096u);
}

TEST(TerminationLogTest, UnexpectedStopSaysNoDetector) {
  std::string path = FreshTempDir(TestName()) + "/termination-log";
  Gateway::Options options;
  options.flags = {"--termination_log=" + path};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);
  gw.Wait();
  EXPECT_EQ(ReadText(path).rfind("unexpected by no detector, exit 1: SIGTERM", 0), 0u)
      << ReadText(path);
}

TEST(TerminationLogTest, DefaultPathIsSkippedWhenAbsent) {
  if (Exists("/dev/termination-log")) GTEST_SKIP() << "/dev/termination-log exists here";
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGINT);
  EXPECT_EQ(gw.Wait().code, 0);
  EXPECT_FALSE(Exists("/dev/termination-log")) << "created a file in /dev";
  EXPECT_EQ(gw.Log().find("termination message"), std::string::npos) << gw.Log();
}

TEST(TerminationLogTest, UnwritableExplicitPathIsLoggedAndExitStatusKept) {
  Gateway::Options options;
  options.flags = {"--termination_log=/nonexistent-dir/termination-log"};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGINT);
  EXPECT_EQ(gw.Wait().code, 0);
  EXPECT_NE(gw.Log().find("could not write the termination message"), std::string::npos)
      << gw.Log();
}

}  // namespace
}  // namespace gateway::testing
