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

TEST(CompiledInDetectorTest, StockGatewayCompilesInExactlyTheBuiltinList) {
  // argv (from BUILD: BUILTIN_DETECTORS) is the list in detectors.bzl.
  std::vector<std::string> builtin_list = ::testing::internal::GetArgvs();
  builtin_list.erase(builtin_list.begin());  // the program name
  std::vector<std::string> compiled_in;
  std::vector<std::string> default_chain(builtin_list.size());
  for (const std::vector<std::string>& row : ListDetectors("gateway/gateway")) {
    ASSERT_EQ(row.size(), 3u);
    compiled_in.push_back(row[0]);
    if (row[2] == "-") continue;  // compiled in, used only when named in --detectors
    size_t position = std::stoul(row[2]);
    ASSERT_LE(position, default_chain.size()) << row[0];
    default_chain[position - 1] = row[0];
  }
  std::vector<std::string> sorted_list = builtin_list;
  std::sort(sorted_list.begin(), sorted_list.end());
  std::sort(compiled_in.begin(), compiled_in.end());
  EXPECT_EQ(compiled_in, sorted_list);
  // The default chain is BUILTIN_DETECTORS in its order (an opt-in
  // built-in may follow it).
  default_chain.erase(std::remove(default_chain.begin(), default_chain.end(), ""),
                      default_chain.end());
  ASSERT_FALSE(default_chain.empty());
  EXPECT_EQ(default_chain,
            std::vector<std::string>(builtin_list.begin(),
                                     builtin_list.begin() + default_chain.size()));
}

}  // namespace
}  // namespace gateway::testing
