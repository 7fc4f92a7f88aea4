// Black-box: the benchmark tooling (//tools/bench) works end to end against
// the real gateway on loopback, briefly and with tiny counts: the upstream
// serves, loadgen drives every mode through the relay with zero failures,
// writes its per-100 ms CSV, and refuses a target outside loopback. It
// asserts on correctness only, never on speed.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// The value of `key` in loadgen's "key=value ..." result line, or -1.
int64_t ResultField(const std::string& line, const std::string& key) {
  for (absl::string_view pair : absl::StrSplit(line, absl::ByAnyChar(" \n"))) {
    std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    int64_t value = 0;
    if (kv.size() == 2 && kv[0] == key && absl::SimpleAtoi(kv[1], &value)) return value;
  }
  return -1;
}

// An upstream server (//tools/bench:upstream) and a gateway in front of it.
class BenchSmokeTest : public ::testing::Test {
 protected:
  void StartRelay(const std::string& upstream_mode) {
    int upstream_port = FreePort();
    upstream_ = std::make_unique<Child>(Child::Options{
        {Runfile("tools/bench/upstream"), absl::StrCat("--listen=127.0.0.1:", upstream_port),
         "--mode=" + upstream_mode, "--max_lifetime_s=60"},
        BaseEnvironment(),
        FreshTempDir(TestName() + "-upstream"),
        ""});
    ASSERT_TRUE(WaitFor(
        [&] {
          int fd = ConnectTo(upstream_port, false, absl::Seconds(1));
          if (fd >= 0) close(fd);
          return fd >= 0;
        },
        absl::Seconds(10)))
        << upstream_->Stderr();
    gateway_port_ = FreePort();
    Gateway::Options options;
    options.flags = {absl::StrCat("--route=127.0.0.1:", gateway_port_, "=127.0.0.1:", upstream_port)};
    gateway_ = std::make_unique<Gateway>(TestName(), options);
    ASSERT_TRUE(gateway_->WaitReady()) << gateway_->Log();
  }

  RunResult Loadgen(std::vector<std::string> flags) {
    flags.insert(flags.begin(), {Runfile("tools/bench/loadgen"),
                                 absl::StrCat("--target=127.0.0.1:", gateway_port_)});
    return RunCommand(flags);
  }

  std::unique_ptr<Child> upstream_;
  std::unique_ptr<Gateway> gateway_;
  int gateway_port_ = 0;
};

TEST_F(BenchSmokeTest, ShortConnectionsThroughTheGatewayAllSucceed) {
  StartRelay("reply");
  RunResult run = Loadgen({"--mode=rate", "--concurrency=4", "--duration_s=1",
                           "--max_connections=2000"});
  ASSERT_TRUE(run.status.exited && run.status.code == 0) << run.status.Describe() << run.err;
  EXPECT_GT(ResultField(run.out, "ok"), 0) << run.out;
  EXPECT_EQ(ResultField(run.out, "failed"), 0) << run.out << gateway_->Log();
}

TEST_F(BenchSmokeTest, PacedModeWritesSuccessesPerHundredMilliseconds) {
  StartRelay("reply");
  std::string csv = FreshTempDir(TestName() + "-csv") + "/buckets.csv";
  RunResult run = Loadgen({"--mode=paced", "--rate=50", "--duration_s=1", "--buckets_csv=" + csv});
  ASSERT_TRUE(run.status.exited && run.status.code == 0) << run.status.Describe() << run.err;
  EXPECT_EQ(ResultField(run.out, "ok"), 50) << run.out;
  EXPECT_EQ(ResultField(run.out, "failed"), 0) << run.out;
  std::vector<std::string> lines = absl::StrSplit(ReadText(csv), '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 3u) << ReadText(csv);
  EXPECT_EQ(lines[1], "t_s,ok,failed");
  int64_t ok = 0;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::vector<std::string> cells = absl::StrSplit(lines[i], ',');
    ASSERT_EQ(cells.size(), 3u) << lines[i];
    int64_t n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(cells[1], &n)) << lines[i];
    ok += n;
  }
  EXPECT_EQ(ok, 50);
}

TEST_F(BenchSmokeTest, BulkStreamsThroughTheGatewayCarryData) {
  StartRelay("sink");
  RunResult run = Loadgen({"--mode=bulk", "--streams=2", "--duration_s=1"});
  ASSERT_TRUE(run.status.exited && run.status.code == 0) << run.status.Describe() << run.err;
  EXPECT_EQ(ResultField(run.out, "ok"), 2) << run.out;
  EXPECT_EQ(ResultField(run.out, "failed"), 0) << run.out;
  EXPECT_GT(ResultField(run.out, "bytes"), 0) << run.out;
}

TEST(BenchLoopbackOnlyTest, LoadgenRefusesATargetOutsideLoopback) {
  RunResult run = RunCommand({Runfile("tools/bench/loadgen"), "--target=192.0.2.1:80",
                              "--mode=rate", "--duration_s=1"});
  EXPECT_TRUE(run.status.exited && run.status.code == 2) << run.status.Describe();
  EXPECT_NE(run.err.find("loopback only"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace gateway::testing
