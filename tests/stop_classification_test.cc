// Black-box: the real //gateway binary, stopped in the ways SPEC 4 and 7
// list, checked by exit status, stop record and log.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

TEST(StopClassificationTest, StrayKillIsUnexpected) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  pid_t sender = SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << gw.Log();
  nlohmann::json record = gw.Record();
  ASSERT_TRUE(record.is_object()) << gw.Log();
  EXPECT_EQ(record["class"], "unexpected");
  EXPECT_TRUE(record["detector"].is_null());
  EXPECT_EQ(record["exit_code"], 1);
  EXPECT_EQ(record["signal"], "SIGTERM");
  EXPECT_EQ(record["sender"]["pid"], sender);
  EXPECT_EQ(record["pid"], gw.pid());
  // nginx-style signal line and the verdict line.
  EXPECT_NE(gw.Log().find(absl::StrCat("received SIGTERM from pid ", sender)), std::string::npos)
      << gw.Log();
  EXPECT_NE(gw.Log().find("stop classified as unexpected by no detector"), std::string::npos);
}

TEST(StopClassificationTest, InheritedInvocationIdIsStillUnexpected) {
  // A gateway started from a shell inside a systemd unit: INVOCATION_ID and
  // SYSTEMD_EXEC_PID are inherited and name the unit's main process.
  Gateway::Options options;
  options.extra_env = {{"INVOCATION_ID", "0123456789abcdef0123456789abcdef"},
                       {"SYSTEMD_EXEC_PID", "1"},
                       {"JOURNAL_STREAM", "8:1234"}};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe();
  EXPECT_EQ(gw.Record()["class"], "unexpected");
}

TEST(StopClassificationTest, InvocationIdWithoutTheManagerAsSenderIsUnexpected) {
  // The naive rule "INVOCATION_ID set ⇒ planned" would exit 0 here.
  Gateway::Options options;
  options.extra_env = {{"INVOCATION_ID", "0123456789abcdef0123456789abcdef"}};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe();
}

TEST(StopClassificationTest, SigintIsPlannedByInteractive) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGINT);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "planned");
  EXPECT_EQ(record["detector"], "interactive");
  EXPECT_EQ(record["exit_code"], 0);
  // A clean exit removes the running sentinel.
  EXPECT_FALSE(Exists(gw.state_dir() + "/running"));
}

TEST(StopClassificationTest, SigquitStopsWithoutDrainingAndIsClassified) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGQUIT);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["signal"], "SIGQUIT");
  EXPECT_EQ(record["drain"]["skipped"], "SIGQUIT");
}

TEST(StopClassificationTest, ExitCodesFlagChangesTheStatus) {
  Gateway::Options options;
  options.flags = {"--exit_codes=unexpected=3,planned=0"};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 3) << status.Describe();
  EXPECT_EQ(gw.Record()["exit_code"], 3);
}

TEST(StopClassificationTest, SigkillIsReportedAsUncleanAtTheNextStart) {
  std::string state_dir = FreshTempDir("sigkill-state") + "/state";
  Gateway::Options options;
  options.state_dir = state_dir;
  pid_t first_pid;
  {
    Gateway first(TestName() + "-1", options);
    ASSERT_TRUE(first.WaitReady()) << first.Log();
    first_pid = first.pid();
    first.child().Signal(SIGKILL);
    ExitStatus status = first.Wait();
    EXPECT_EQ(status.signal, SIGKILL);
    EXPECT_TRUE(Exists(state_dir + "/running"));
  }
  Gateway second(TestName() + "-2", options);
  ASSERT_TRUE(second.WaitReady()) << second.Log();
  EXPECT_NE(second.Log().find(absl::StrCat("previous run (pid ", first_pid,
                                           ") did not exit cleanly")),
            std::string::npos)
      << second.Log();
  SignalFromSibling(second.pid(), SIGINT);
  ASSERT_EQ(second.Wait().code, 0);
  nlohmann::json record = second.Record();
  EXPECT_EQ(record["previous_exit"], "unclean");
  EXPECT_EQ(record["previous_run"]["pid"], first_pid);

  // Every stop is in the history, one JSON line each, after the line the
  // second start added for the unclean exit it found.
  std::string history = ReadText(state_dir + "/stop-history.jsonl");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 2) << history;
  EXPECT_EQ(history.find("{\"version\":1,\"kind\":\"unclean_exit\""), 0u) << history;
  EXPECT_NE(history.find(absl::StrCat("\"pid\":", second.pid())), std::string::npos);

  // And a clean stop is reported as such at the start after it.
  Gateway third(TestName() + "-3", options);
  ASSERT_TRUE(third.WaitReady()) << third.Log();
  SignalFromSibling(third.pid(), SIGTERM);
  ASSERT_EQ(third.Wait().code, 1);
  EXPECT_EQ(third.Record()["previous_exit"], "clean");
  EXPECT_EQ(third.Record()["previous_run"]["class"], "planned");
  history = ReadText(state_dir + "/stop-history.jsonl");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 3) << history;
}

TEST(StopClassificationTest, SigtermDuringStartUpIsClassifiedTheSameWay) {
  Gateway::Options options;
  options.flags = {"--startup_delay_for_test=20s"};
  Gateway gw(TestName(), options);
  // The sentinel is written after the signals are blocked and before the
  // signal thread starts: from then on a signal is never lost.
  ASSERT_TRUE(WaitFor([&] { return Exists(gw.state_dir() + "/instance.json"); },
                      absl::Seconds(10)));
  absl::Time sent = absl::Now();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait(absl::Seconds(10));
  EXPECT_LT(absl::Now() - sent, absl::Seconds(5)) << "start-up delay was not interrupted";
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << gw.Log();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "unexpected");
  EXPECT_EQ(record["phase"], "starting");
  for (const std::string& n : gw.Notifications()) {
    EXPECT_EQ(n.find("READY=1"), std::string::npos) << "became ready after the stop";
  }
}

TEST(StopClassificationTest, SigintDuringStartUpIsPlanned) {
  Gateway::Options options;
  options.flags = {"--startup_delay_for_test=20s"};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(WaitFor([&] { return Exists(gw.state_dir() + "/instance.json"); },
                      absl::Seconds(10)));
  SignalFromSibling(gw.pid(), SIGINT);
  ExitStatus status = gw.Wait(absl::Seconds(10));
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  EXPECT_EQ(gw.Record()["phase"], "starting");
  EXPECT_EQ(gw.Record()["detector"], "interactive");
}

TEST(StopClassificationTest, SecondInstanceOnTheSameStateDirectoryIsRefused) {
  Gateway first(TestName() + "-1");
  ASSERT_TRUE(first.WaitReady()) << first.Log();
  Gateway::Options options;
  options.state_dir = first.state_dir();
  Gateway second(TestName() + "-2", options);
  ExitStatus status = second.Wait();
  EXPECT_TRUE(status.exited && status.code == 75) << status.Describe();
  EXPECT_EQ(second.Log(), absl::StrCat("gateway: error: another gateway (pid ", first.pid(),
                                       ") is already running on state directory ",
                                       first.state_dir(),
                                       "; stop it first or use another --state_dir\n"));
  // The first one is untouched and still classifies its own stop.
  EXPECT_TRUE(first.child().Running());
  SignalFromSibling(first.pid(), SIGINT);
  EXPECT_EQ(first.Wait().code, 0);
  EXPECT_EQ(first.Record()["pid"], first.pid());
}

struct ConfigErrorCase {
  std::string name;
  std::vector<std::string> flags;
  std::string message;
};

class ConfigErrorTest : public ::testing::TestWithParam<ConfigErrorCase> {};

TEST_P(ConfigErrorTest, ExitsWithConfigErrorAndOneLine) {
  Gateway::Options options;
  options.flags = GetParam().flags;
  Gateway gw("config-" + GetParam().name, options);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 78) << status.Describe() << gw.Log();
  std::string log = gw.Log();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  EXPECT_NE(log.find("gateway: error: " + GetParam().message), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(
    Flags, ConfigErrorTest,
    ::testing::Values(
        ConfigErrorCase{"unknown_detector", {"--detectors=systemd,nosuch"},
                        "unknown detector 'nosuch' in --detectors; known: "},
        ConfigErrorCase{"duplicate_detector", {"--detectors=systemd,interactive,systemd"},
                        "detector 'systemd' is listed twice"},
        ConfigErrorCase{"empty_detector", {"--detectors=systemd,,interactive"},
                        "--detectors has an empty name"},
        ConfigErrorCase{"unknown_flag", {"--no_such_flag=1"}, "unknown flag --no_such_flag"},
        ConfigErrorCase{"bad_exit_codes", {"--exit_codes=planned=300"},
                        "--exit_codes: 'planned=300' needs an exit code from 0 to 255"},
        ConfigErrorCase{"bad_ttl", {"--marker_ttl=soon"}, "bad duration 'soon' for --marker_ttl"},
        ConfigErrorCase{"stray_argument", {"serve"}, "unexpected argument 'serve'"}),
    [](const auto& info) { return info.param.name; });

enum class BadDir { kSymlink, kWorldWritable, kOtherOwner, kFile, kUncreatable };

class BadStateDirTest : public ::testing::TestWithParam<std::pair<BadDir, std::string>> {};

TEST_P(BadStateDirTest, IsRefusedWithConfigError) {
  auto [kind, message] = GetParam();
  std::string root = FreshTempDir(absl::StrCat("baddir-", static_cast<int>(kind)));
  std::string path = root + "/state";
  switch (kind) {
    case BadDir::kSymlink:
      ASSERT_EQ(mkdir((root + "/real").c_str(), 0700), 0);
      ASSERT_EQ(symlink((root + "/real").c_str(), path.c_str()), 0);
      break;
    case BadDir::kWorldWritable:
      ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
      ASSERT_EQ(chmod(path.c_str(), 0777), 0);
      break;
    case BadDir::kOtherOwner:
      if (geteuid() != 0) GTEST_SKIP() << "needs root to give the directory to another user";
      ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
      ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
      break;
    case BadDir::kFile:
      ASSERT_EQ(close(open(path.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
      break;
    case BadDir::kUncreatable:
      path = "/proc/self/no-such-dir/state";
      break;
  }
  Gateway::Options options;
  options.state_dir = path;
  Gateway gw(absl::StrCat("baddir-run-", static_cast<int>(kind)), options);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 78) << status.Describe() << gw.Log();
  std::string log = gw.Log();
  EXPECT_NE(log.find(message), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, BadStateDirTest,
    ::testing::Values(std::make_pair(BadDir::kSymlink, "is a symbolic link"),
                      std::make_pair(BadDir::kWorldWritable, "writable by group or others"),
                      std::make_pair(BadDir::kOtherOwner, "is owned by uid 65534"),
                      std::make_pair(BadDir::kFile, "is not a directory"),
                      std::make_pair(BadDir::kUncreatable, "cannot create state directory")));

TEST(BinaryTest, EveryBuiltInDetectorIsRegisteredInTheRealBinary) {
  RunResult result = RunCommand({Runfile("gateway/gateway"), "--list_detectors"});
  ASSERT_EQ(result.status.code, 0) << result.err;
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(result.out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    ASSERT_EQ(fields.size(), 3u) << line;
    EXPECT_EQ(fields[1], "built-in");
    names.push_back(fields[0]);
  }
  for (const char* expected : {"takeover_marker", "planned_stop_file", "systemd",
                               "container_pid1", "supervisor", "interactive"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
}

TEST(BinaryTest, DefaultStateDirectoryIsUsedAndLogged) {
  // No --state_dir: the default comes from the environment (SPEC 4.7).
  std::string runtime = FreshTempDir("default-runtime");
  Child::Options options;
  options.argv = {Runfile("gateway/gateway"), "--admin=127.0.0.1:0"};
  options.env = BaseEnvironment();
  options.env["XDG_RUNTIME_DIR"] = runtime;
  Child child(options);
  ASSERT_TRUE(WaitFor([&] { return Exists(runtime + "/gateway/instance.json"); },
                      absl::Seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return child.Stderr().find("serving") != std::string::npos; },
                      absl::Seconds(10)));
  EXPECT_NE(child.Stderr().find("state directory " + runtime + "/gateway"), std::string::npos)
      << child.Stderr();
  child.Signal(SIGINT);  // as Ctrl-C would, from the parent shell
  ExitStatus status = child.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << child.Stderr();
}

}  // namespace
}  // namespace gateway::testing
