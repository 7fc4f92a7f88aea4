// Black-box: a detector added with gateway_detector() and linked with
// gateway_binary() is registered in the real binary (--list_detectors),
// decides a real stop (signal -> record), and stays out of the default
// chain; the stock //gateway compiles in exactly BUILTIN_DETECTORS.
#include <signal.h>

#include <algorithm>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

constexpr char kExampleBinary[] = "tests/custom/gateway_with_example";

// The binary's --list_detectors lines as {name, origin, position}.
std::vector<std::vector<std::string>> ListDetectors(const std::string& binary) {
  RunResult result = RunCommand({Runfile(binary), "--list_detectors"});
  EXPECT_EQ(result.status.code, 0) << result.err;
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(result.out, '\n', absl::SkipEmpty())) {
    rows.push_back(absl::StrSplit(line, '\t'));
  }
  return rows;
}

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

TEST(CompiledInDetectorTest, ExampleDetectorIsRegisteredButNotInTheDefaultChain) {
  std::vector<std::vector<std::string>> rows = ListDetectors(kExampleBinary);
  auto it = std::find_if(rows.begin(), rows.end(),
                         [](const auto& row) { return row[0] == "maintenance_window"; });
  ASSERT_NE(it, rows.end()) << "maintenance_window missing from --list_detectors";
  EXPECT_EQ(*it, (std::vector<std::string>{"maintenance_window", "built-in", "-"}));
  EXPECT_EQ(rows.size(), 7u);  // the six built-ins are still there
}

TEST(CompiledInDetectorTest, ExampleDetectorDecidesARealStopWhenFirstInTheChain) {
  Gateway::Options options;
  options.binary = kExampleBinary;
  options.flags = {"--detectors=maintenance_window,takeover_marker,planned_stop_file,systemd"};
  options.extra_env = {{"GATEWAY_MAINTENANCE_WINDOW", "daily 00:00-00:00"}};  // all day
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);  // a stray kill: unexpected without the window
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << gw.Log();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "planned") << record.dump();
  EXPECT_EQ(record["detector"], "maintenance_window");
  EXPECT_NE(record["evidence"].get<std::string>().find("inside the maintenance window"),
            std::string::npos)
      << record.dump();
  EXPECT_EQ(record["detectors"][0], "maintenance_window");
}

TEST(CompiledInDetectorTest, ExampleDetectorIsNotUsedUnlessNamedInDetectors) {
  Gateway::Options options;
  options.binary = kExampleBinary;
  options.extra_env = {{"GATEWAY_MAINTENANCE_WINDOW", "daily 00:00-00:00"}};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << gw.Log();
  EXPECT_TRUE(gw.Record()["detector"].is_null()) << gw.Record().dump();
}

TEST(CompiledInDetectorTest, StockGatewayCompilesInExactlyTheBuiltinListInDefaultOrder) {
  // argv (from BUILD: BUILTIN_DETECTORS) is the list in detectors.bzl.
  std::vector<std::string> builtin_list = ::testing::internal::GetArgvs();
  builtin_list.erase(builtin_list.begin());  // the program name
  ASSERT_FALSE(builtin_list.empty());
  std::vector<std::string> in_default_order(builtin_list.size());
  for (const std::vector<std::string>& row : ListDetectors("gateway/gateway")) {
    ASSERT_EQ(row.size(), 3u);
    auto listed = std::find(builtin_list.begin(), builtin_list.end(), row[0]);
    ASSERT_NE(listed, builtin_list.end()) << row[0] << " is compiled in but not in BUILTIN_DETECTORS";
    int position = std::stoi(row[2]);  // "-" would throw: every built-in is in the default chain
    ASSERT_GE(position, 1);
    ASSERT_LE(position, static_cast<int>(in_default_order.size()));
    in_default_order[position - 1] = row[0];
  }
  EXPECT_EQ(in_default_order, builtin_list);
}

}  // namespace
}  // namespace gateway::testing
