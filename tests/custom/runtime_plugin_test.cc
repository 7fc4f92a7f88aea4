// Black-box: runtime detector plugins (--detector_plugin, C ABI in
// gateway/plugins/plugin_abi.h) in the real //gateway. A good plugin decides a real
// stop and gatewayctl explain sees it; every broken plugin is one line and
// exit 78 at start-up; a plugin that crashes or hangs during a stop loses
// only its own opinion, never the stop record.
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

constexpr char kDefaultChain[] =
    "takeover_marker,planned_stop_file,systemd,container_pid1,supervisor,interactive";

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::string DeployLockPlugin() {
  return Runfile("detectors/plugin_example/libdeploy_lock_plugin.so");
}

std::string TestPlugin(const std::string& behaviour) {
  return Runfile(absl::StrCat("tests/custom/plugins/lib", behaviour, "_plugin.so"));
}

// A gateway with the deploy_lock plugin first in the chain and a deploy
// lock file that exists.
Gateway::Options DeployLockOptions(const std::string& lock_dir) {
  Gateway::Options options;
  options.flags = {"--detector_plugin=" + DeployLockPlugin(),
                   absl::StrCat("--detectors=deploy_lock,", kDefaultChain)};
  std::string lock = lock_dir + "/deploy.lock";
  RunCommand({"/usr/bin/touch", lock});
  options.extra_env = {{"GATEWAY_DEPLOY_LOCK", lock}};
  return options;
}

TEST(RuntimePluginTest, PluginIsListedWithItsPath) {
  RunResult result =
      RunCommand({Runfile("gateway/gateway"), "--list_detectors",
                  "--detector_plugin=" + DeployLockPlugin()});
  ASSERT_EQ(result.status.code, 0) << result.err;
  EXPECT_NE(result.out.find("deploy_lock\t" + DeployLockPlugin() + "\t-\n"), std::string::npos)
      << result.out;
}

// gateway --check loads and probes the plugins as a start does.
TEST(RuntimePluginTest, CheckProbesThePlugins) {
  RunResult good = RunCommand({Runfile("gateway/gateway"), "--check",
                               "--detector_plugin=" + DeployLockPlugin(),
                               absl::StrCat("--detectors=deploy_lock,", kDefaultChain)});
  ASSERT_EQ(good.status.code, 0) << good.err;
  EXPECT_NE(good.out.find(absl::StrCat("detectors deploy_lock,", kDefaultChain, "\n")),
            std::string::npos)
      << good.out;
  RunResult bad = RunCommand({Runfile("gateway/gateway"), "--check",
                              "--detector_plugin=" + TestPlugin("garbage_class")});
  EXPECT_EQ(bad.status.code, 78) << bad.err;
  EXPECT_EQ(bad.out, "");
  EXPECT_EQ(bad.err.rfind("gateway: error: ", 0), 0u) << bad.err;
  EXPECT_NE(bad.err.find("failed its start-up probe"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

TEST(RuntimePluginTest, FlagCanBeRepeatedOrCommaSeparated) {
  RunResult result = RunCommand(
      {Runfile("gateway/gateway"), "--list_detectors",
       "--detector_plugin=" + DeployLockPlugin(),
       absl::StrCat("--detector_plugin=", TestPlugin("crash_on_stop"), ",",
                    TestPlugin("hang_on_stop"))});
  // hang_on_stop is also called "misbehaving": all three were loaded.
  EXPECT_EQ(result.status.code, 78) << result.err;
  EXPECT_NE(result.err.find("detector 'misbehaving' is registered twice (" +
                            TestPlugin("crash_on_stop") + " and " + TestPlugin("hang_on_stop")),
            std::string::npos)
      << result.err;
  result = RunCommand({Runfile("gateway/gateway"), "--list_detectors",
                       "--detector_plugin=" + DeployLockPlugin(),
                       "--detector_plugin=" + TestPlugin("crash_on_stop")});
  ASSERT_EQ(result.status.code, 0) << result.err;
  EXPECT_NE(result.out.find("deploy_lock\t"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("misbehaving\t"), std::string::npos) << result.out;
}

TEST(RuntimePluginTest, GoodPluginDecidesARealStop) {
  std::string lock_dir = FreshTempDir(TestName() + "-lock");
  Gateway gw(TestName(), DeployLockOptions(lock_dir));
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  pid_t sender = SignalFromSibling(gw.pid(), SIGTERM);  // unexpected without the plugin
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << gw.Log();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "planned") << record.dump();
  EXPECT_EQ(record["detector"], "deploy_lock");
  EXPECT_EQ(record["evidence"],
            absl::StrCat("signal 15 from pid ", sender, " (",
                         record["sender"]["comm"].get<std::string>(), ") while the deploy lock ",
                         lock_dir, "/deploy.lock exists"))
      << record.dump();
  EXPECT_EQ(record["detector_warnings"], nlohmann::json::array());
  nlohmann::json instance =
      nlohmann::json::parse(ReadText(gw.state_dir() + "/instance.json"), nullptr, false);
  EXPECT_EQ(instance["detector_plugins"], nlohmann::json::array({DeployLockPlugin()}))
      << instance.dump();
  EXPECT_EQ(instance["detector_plugin_timeout"], "2s") << instance.dump();
}

TEST(RuntimePluginTest, ExplainLoadsTheInstancesPlugins) {
  std::string lock_dir = FreshTempDir(TestName() + "-lock");
  Gateway gw(TestName(), DeployLockOptions(lock_dir));
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  PendingSender sender(gw.pid(), SIGTERM);
  RunResult explain = Gatewayctl({"explain", "--json", "--state_dir=" + gw.state_dir(),
                                  "--signal=TERM", absl::StrCat("--sender=", sender.pid())});
  ASSERT_EQ(explain.status.code, 0) << explain.err;
  nlohmann::json predicted = nlohmann::json::parse(explain.out, nullptr, false);
  EXPECT_EQ(predicted["detector"], "deploy_lock") << explain.out;
  EXPECT_EQ(predicted["class"], "planned") << explain.out;
  sender.Fire();
  EXPECT_EQ(gw.Wait().code, 0) << gw.Log();
  EXPECT_EQ(gw.Record()["detector"], "deploy_lock");
}

TEST(RuntimePluginTest, CrashInDetectLosesOnlyThePluginsOpinion) {
  Gateway::Options options;
  options.flags = {"--detector_plugin=" + TestPlugin("crash_on_stop"),
                   absl::StrCat("--detectors=misbehaving,", kDefaultChain)};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  SignalFromSibling(gw.pid(), SIGINT);
  ExitStatus status = gw.Wait();
  // The chain went on past the crashed plugin: interactive decided.
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << gw.Log();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "planned") << gw.Log();
  EXPECT_EQ(record["detector"], "interactive");
  EXPECT_NE(gw.Log().find("has no opinion: detect() crashed with SIGSEGV"), std::string::npos)
      << gw.Log();
  ASSERT_EQ(record["detector_warnings"].size(), 1u) << record;
  EXPECT_NE(record["detector_warnings"][0].get<std::string>().find(
                "'misbehaving' (" + TestPlugin("crash_on_stop") +
                ") has no opinion: detect() crashed with SIGSEGV"),
            std::string::npos)
      << record;
}

// A plugin whose detect() never answers during a stop, first in the chain,
// cut off after 300 ms.
Gateway::Options HangingPluginOptions() {
  Gateway::Options options;
  options.flags = {"--detector_plugin=" + TestPlugin("hang_on_stop"),
                   "--detector_plugin_timeout=300ms",
                   absl::StrCat("--detectors=misbehaving,", kDefaultChain)};
  return options;
}

TEST(RuntimePluginTest, HangInDetectIsCutOffByTheTimeout) {
  Gateway gw(TestName(), HangingPluginOptions());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  absl::Time signalled = absl::Now();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait(absl::Seconds(10));
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << gw.Log();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5));
  EXPECT_EQ(gw.Record()["class"], "unexpected") << gw.Log();
  EXPECT_NE(gw.Log().find("did not answer within 300ms and was killed"), std::string::npos)
      << gw.Log();
  ASSERT_EQ(gw.Record()["detector_warnings"].size(), 1u) << gw.Record();
  EXPECT_NE(gw.Record()["detector_warnings"][0].get<std::string>().find(
                "did not answer within 300ms and was killed"),
            std::string::npos);
}

TEST(RuntimePluginTest, ExplainUsesTheInstancesPluginTimeout) {
  // The instance cuts a hanging plugin off after 300 ms; explain must
  // predict with the same limit, not the 2 s default.
  Gateway gw(TestName(), HangingPluginOptions());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  absl::Time asked = absl::Now();
  RunResult explain = Gatewayctl({"explain", "--json", "--state_dir=" + gw.state_dir(),
                                  "--signal=TERM", "--sender=1"});
  absl::Duration took = absl::Now() - asked;
  ASSERT_EQ(explain.status.code, 0) << explain.err;
  EXPECT_LT(took, absl::Milliseconds(1500)) << explain.out << explain.err;
  EXPECT_NE((explain.out + explain.err).find("did not answer within 300ms"), std::string::npos)
      << explain.out << explain.err;
}

// Each broken plugin (or broken use of one) is refused at start-up with one
// line naming the problem, and the configuration-error status.
struct BadPluginCase {
  std::string name;
  // "@behaviour" stands for that test plugin; "@text" for a text file,
  // "@missing" for a path that does not exist.
  std::vector<std::string> flags;
  std::string message;
};

class BadPluginTest : public ::testing::TestWithParam<BadPluginCase> {};

TEST_P(BadPluginTest, ExitsWithConfigErrorAndOneLine) {
  const BadPluginCase& c = GetParam();
  std::string dir = FreshTempDir("bad-plugin-" + c.name);
  RunCommand({"/bin/sh", "-c", "echo 'not a library' > " + dir + "/text.so"});
  Gateway::Options options;
  options.notify = false;
  for (const std::string& flag : c.flags) {
    options.flags.push_back(absl::StrReplaceAll(
        flag, {{"@text", dir + "/text.so"}, {"@missing", dir + "/missing.so"}}));
    for (const char* behaviour : {"wrong_abi", "no_entry", "empty_name", "builtin_name",
                                  "garbage_class", "unterminated_evidence", "crash_on_probe",
                                  "crash_on_stop"}) {
      options.flags.back() = absl::StrReplaceAll(
          options.flags.back(), {{absl::StrCat("@", behaviour), TestPlugin(behaviour)}});
    }
  }
  Gateway gw("bad-plugin-run-" + c.name, options);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 78) << status.Describe() << gw.Log();
  std::string log = gw.Log();
  EXPECT_NE(log.find("gateway: error: "), std::string::npos) << log;
  EXPECT_NE(log.find(c.message), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadPluginTest,
    ::testing::Values(
        BadPluginCase{"missing", {"--detector_plugin=@missing"}, "No such file or directory"},
        BadPluginCase{"not_a_library", {"--detector_plugin=@text"}, "cannot be loaded"},
        BadPluginCase{"wrong_abi",
                      {"--detector_plugin=@wrong_abi"},
                      "has plugin ABI version 99 but this gateway supports version 1"},
        BadPluginCase{"no_entry",
                      {"--detector_plugin=@no_entry"},
                      "does not export gateway_detector_plugin_v1()"},
        BadPluginCase{"empty_name", {"--detector_plugin=@empty_name"}, "detector name '' from"},
        BadPluginCase{"builtin_name",
                      {"--detector_plugin=@builtin_name"},
                      "detector 'systemd' is registered twice (built-in and "},
        BadPluginCase{"same_plugin_twice",
                      {"--detector_plugin=@crash_on_stop,@crash_on_stop"},
                      "detector 'misbehaving' is registered twice"},
        BadPluginCase{"garbage_class",
                      {"--detector_plugin=@garbage_class"},
                      "failed its start-up probe: detect() returned 42, which is not a stop class"},
        BadPluginCase{"unterminated_evidence",
                      {"--detector_plugin=@unterminated_evidence"},
                      "failed its start-up probe: detect() left its evidence without a "
                      "terminating NUL"},
        BadPluginCase{"crash_on_probe",
                      {"--detector_plugin=@crash_on_probe"},
                      "failed its start-up probe: detect() crashed with SIGSEGV"},
        BadPluginCase{"listed_twice",
                      {"--detector_plugin=@crash_on_stop",
                       "--detectors=misbehaving,interactive,misbehaving"},
                      "detector 'misbehaving' is listed twice in --detectors"},
        BadPluginCase{"not_named_unknown",
                      {"--detectors=misbehaving,interactive"},
                      "unknown detector 'misbehaving' in --detectors"},
        BadPluginCase{"bad_timeout",
                      {"--detector_plugin=@crash_on_stop", "--detector_plugin_timeout=0s"},
                      "--detector_plugin_timeout must be positive"}),
    [](const ::testing::TestParamInfo<BadPluginCase>& info) { return info.param.name; });

}  // namespace
}  // namespace gateway::testing
