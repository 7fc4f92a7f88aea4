// Unit tests of the Kubernetes termination message: content, size limit,
// and writing in place.
#include "gateway/supervision/termination_log.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace gateway {
namespace {

StopRecord PlannedBySystemd() {
  StopRecord record;
  record.verdict.stop_class = StopClass::kPlanned;
  record.verdict.detector = "systemd";
  record.verdict.evidence = "SIGTERM from pid 1 (systemd); INVOCATION_ID set";
  record.exit_code = 0;
  return record;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(TerminationMessageTest, NamesClassDetectorExitAndEvidence) {
  EXPECT_EQ(TerminationMessage(PlannedBySystemd()),
            "planned by systemd, exit 0: SIGTERM from pid 1 (systemd); INVOCATION_ID set\n");
}

TEST(TerminationMessageTest, SaysNoDetectorForUnexpectedStops) {
  StopRecord record;
  record.verdict.stop_class = StopClass::kUnexpected;
  record.verdict.evidence = "SIGTERM from pid 77 (bash)";
  record.exit_code = 1;
  EXPECT_EQ(TerminationMessage(record),
            "unexpected by no detector, exit 1: SIGTERM from pid 77 (bash)\n");
}

TEST(TerminationMessageTest, IsCutToKubernetesLimitWithoutSplittingUtf8) {
  StopRecord record = PlannedBySystemd();
  record.verdict.evidence.clear();
  for (int i = 0; i < 3000; ++i) record.verdict.evidence += "\xc3\xa9";  // é
  std::string message = TerminationMessage(record);
  EXPECT_LE(message.size(), kTerminationMessageMaxBytes);
  EXPECT_GT(message.size(), kTerminationMessageMaxBytes - 2);
  EXPECT_NE(static_cast<unsigned char>(message.back()), 0xc3) << "split a UTF-8 sequence";
}

TEST(WriteTerminationMessageTest, ReplacesContentInPlace) {
  std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/termination-log";
  std::ofstream(path) << "an older, much longer message from the previous container\n";
  struct stat before;
  ASSERT_EQ(stat(path.c_str(), &before), 0);
  ASSERT_TRUE(WriteTerminationMessage(path, "planned\n").ok());
  EXPECT_EQ(ReadFile(path), "planned\n");
  struct stat after;
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "a bind-mounted file must not be replaced";
}

TEST(WriteTerminationMessageTest, FailsWithThePathInTheMessage) {
  absl::Status status = WriteTerminationMessage("/nonexistent-dir/termination-log", "x");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/nonexistent-dir/termination-log"), std::string::npos);
}

}  // namespace
}  // namespace gateway
