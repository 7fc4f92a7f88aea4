// Black-box: the real gatewayctl against the real gateway.
#include <signal.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

nlohmann::json ParseJson(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, false);
}

TEST(GatewayctlTest, StopIsPlannedByThePlannedStopFile) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  RunResult stop = Gatewayctl({"stop", "--state_dir=" + gw.state_dir(), "--reason=deploy 7"});
  EXPECT_EQ(stop.status.code, 0) << stop.err;
  EXPECT_NE(stop.out.find(absl::StrCat("stopped pid ", gw.pid(), ": planned (planned_stop_file)")),
            std::string::npos)
      << stop.out;
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "planned");
  EXPECT_EQ(record["detector"], "planned_stop_file");
  EXPECT_NE(record["evidence"].get<std::string>().find("reason: deploy 7"), std::string::npos);
  // Consumed when it decided the stop.
  EXPECT_FALSE(Exists(gw.state_dir() + "/planned-stop.json"));
}

TEST(GatewayctlTest, StopJsonIsTheRecord) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  RunResult stop = Gatewayctl({"stop", "--json", "--state_dir=" + gw.state_dir()});
  ASSERT_EQ(stop.status.code, 0) << stop.err;
  ASSERT_EQ(gw.Wait().code, 0);
  EXPECT_EQ(ParseJson(stop.out), gw.Record());
}

TEST(GatewayctlTest, MarkPlannedThenSigtermFromAnotherProcessIsPlanned) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  RunResult mark = Gatewayctl({"mark-planned", "--state_dir=" + gw.state_dir()});
  ASSERT_EQ(mark.status.code, 0) << mark.err;
  EXPECT_TRUE(gw.child().Running()) << "mark-planned must not signal";
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  EXPECT_EQ(gw.Record()["detector"], "planned_stop_file");
}

TEST(GatewayctlTest, StopEscalatesToSigkillAfterTheTimeout) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  gw.child().Signal(SIGSTOP);  // a gateway that cannot react to SIGTERM
  RunResult stop = Gatewayctl({"stop", "--timeout=300ms", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(stop.status.code, 1);
  EXPECT_TRUE(absl::StartsWith(
      stop.err, absl::StrCat("sent SIGTERM to pid ", gw.pid(), "; waiting up to 300ms, then SIGKILL\n"
                             "gatewayctl: pid ", gw.pid(), " did not exit within 300ms")))
      << stop.err;
  EXPECT_TRUE(absl::EndsWith(stop.err, "; sent SIGKILL\n")) << stop.err;
  EXPECT_EQ(gw.Wait().signal, SIGKILL);
}

TEST(GatewayctlTest, CommandsFailWithOneLineWhenNothingRuns) {
  std::string state_dir = FreshTempDir("ctl-nothing") + "/absent";
  for (const char* command : {"stop", "mark-planned", "explain"}) {
    RunResult result =
        Gatewayctl({command, "--state_dir=" + state_dir, "--sender=1"});
    EXPECT_EQ(result.status.code, 1) << command;
    EXPECT_EQ(result.err, absl::StrCat("gatewayctl: no gateway has run with state directory ",
                                       state_dir, " (it does not exist)\n"))
        << command;
  }
  RunResult status = Gatewayctl({"status", "--json", "--state_dir=" + state_dir});
  EXPECT_EQ(status.status.code, 3);
  EXPECT_TRUE(ParseJson(status.out).contains("error")) << status.out;
}

TEST(GatewayctlTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Gatewayctl({}).status.code, 2);
  EXPECT_EQ(Gatewayctl({"frobnicate"}).status.code, 2);
  EXPECT_EQ(Gatewayctl({"status", "--no_such_flag"}).status.code, 2);
  EXPECT_EQ(Gatewayctl({"stop", "--timeout=never"}).status.code, 2);
}

TEST(GatewayctlTest, StatusJsonMatchesTheInstanceAndTheRecord) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  RunResult running = Gatewayctl({"status", "--json", "--state_dir=" + gw.state_dir()});
  ASSERT_EQ(running.status.code, 0) << running.err;
  nlohmann::json j = ParseJson(running.out);
  ASSERT_TRUE(j.is_object()) << running.out;
  EXPECT_EQ(j["running"], true);
  EXPECT_EQ(j["instance"]["pid"], gw.pid());
  EXPECT_EQ(j["state_dir"], gw.state_dir());
  EXPECT_GE(j["instance"]["uptime_seconds"].get<int>(), 0);
  EXPECT_EQ(j["instance"]["phase"], "serving");
  EXPECT_EQ(j["instance"]["connections_active"], 0);
  EXPECT_TRUE(j["instance"]["routes"].is_array());

  SignalFromSibling(gw.pid(), SIGTERM);
  ASSERT_EQ(gw.Wait().code, 1);
  RunResult stopped = Gatewayctl({"status", "--json", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(stopped.status.code, 3);
  j = ParseJson(stopped.out);
  EXPECT_EQ(j["running"], false);
  EXPECT_EQ(j["last_shutdown"], gw.Record());
  RunResult text = Gatewayctl({"status", "--state_dir=" + gw.state_dir()});
  EXPECT_NE(text.out.find("gateway is not running"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(absl::StrCat("last stop: pid ", gw.pid(), " unexpected by no detector, exit 1")),
            std::string::npos)
      << text.out;
}

// explain must predict exactly what the real stop then records.
struct ExplainCase {
  std::string name;
  int signo;
  bool mark_planned;
  bool from_parent;  // the test process, the gateway's parent, sends it
};

class ExplainTest : public ::testing::TestWithParam<ExplainCase> {};

TEST_P(ExplainTest, PredictsTheRecordedVerdict) {
  const ExplainCase& c = GetParam();
  Gateway gw("explain-" + c.name);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  if (c.mark_planned) {
    ASSERT_EQ(Gatewayctl({"mark-planned", "--state_dir=" + gw.state_dir()}).status.code, 0);
  }
  std::optional<PendingSender> sender;
  pid_t sender_pid = getpid();
  if (!c.from_parent) {
    sender.emplace(gw.pid(), c.signo);
    sender_pid = sender->pid();
  }
  RunResult explain =
      Gatewayctl({"explain", "--json", "--state_dir=" + gw.state_dir(),
                  absl::StrCat("--signal=", c.signo), absl::StrCat("--sender=", sender_pid)});
  ASSERT_EQ(explain.status.code, 0) << explain.err;
  nlohmann::json predicted = ParseJson(explain.out);
  ASSERT_TRUE(predicted.is_object()) << explain.out;
  EXPECT_TRUE(gw.child().Running()) << "explain must not stop anything";
  if (c.mark_planned) {
    EXPECT_TRUE(Exists(gw.state_dir() + "/planned-stop.json")) << "explain consumed the marker";
  }
  if (sender) {
    sender->Fire();
  } else {
    gw.child().Signal(c.signo);
  }
  ExitStatus status = gw.Wait();
  ASSERT_TRUE(status.exited) << status.Describe();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(predicted["class"], record["class"]);
  EXPECT_EQ(predicted["detector"], record["detector"]);
  EXPECT_EQ(predicted["exit_code"], record["exit_code"]);
  EXPECT_EQ(predicted["exit_code"], status.code);
  EXPECT_EQ(predicted["sender"]["pid"], record["sender"]["pid"]);
}

INSTANTIATE_TEST_SUITE_P(
    Senders, ExplainTest,
    ::testing::Values(ExplainCase{"stray_kill", SIGTERM, false, false},
                      ExplainCase{"sigint_from_a_tool", SIGINT, false, false},
                      ExplainCase{"marked_then_killed", SIGTERM, true, false},
                      ExplainCase{"parent_that_is_no_supervisor", SIGTERM, false, true},
                      ExplainCase{"quit_from_sibling", SIGQUIT, false, false}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace gateway::testing
