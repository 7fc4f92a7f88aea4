// Black-box: `gateway --check` (docs/configuration.md, "Checking a
// configuration"): one line and exit 0 or 78, nothing bound or written; and
// the same message from a SIGHUP reload and a refused `gatewayctl replace`
// for the same bad config.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

constexpr char kErrorPrefix[] = "gateway: error: ";

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

bool Echoes(int port) {
  int fd = ConnectTo(port, false, absl::Seconds(5));
  if (fd < 0) return false;
  bool ok = SendAll(fd, "ping") && RecvExactly(fd, 4) == "ping";
  close(fd);
  return ok;
}

// Two routes, three upstreams; the second has a health check.
std::string GoodConfig(int listen_a, int listen_b, int upstream) {
  return absl::StrCat(R"({"routes": [{"name": "a", "listen": "127.0.0.1:)", listen_a,
                      R"(", "upstream": "127.0.0.1:)", upstream, R"("},
    {"name": "b", "listen": "127.0.0.1:)", listen_b, R"(", "upstreams": [
      {"address": "127.0.0.1:)", upstream, R"("}, {"address": "127.0.0.1:1", "backup": true}],
     "health_check": {"interval": "2s", "timeout": "1s"}}]})");
}

class ConfigCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshTempDir(TestName());
    config_ = dir_ + "/gateway.json";
    state_dir_ = dir_ + "/state-never-created";
  }
  void WriteConfig(const std::string& text) { std::ofstream(config_) << text; }
  RunResult Check(std::vector<std::string> flags) {
    std::vector<std::string> argv = {Runfile("gateway/gateway"), "--check",
                                     "--state_dir=" + state_dir_};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunCommand(argv);
  }
  // The one-line error of a failing check, without "gateway: error: ".
  std::string CheckError() {
    RunResult result = Check({"--config=" + config_, "--admin=127.0.0.1:0"});
    EXPECT_EQ(result.status.code, 78) << result.status.Describe() << result.err;
    EXPECT_EQ(result.out, "");
    std::vector<std::string> lines = Lines(result.err);
    EXPECT_EQ(lines.size(), 1u) << result.err;
    if (lines.empty() || !absl::StartsWith(lines[0], kErrorPrefix)) {
      ADD_FAILURE() << result.err;
      return "?";
    }
    return lines[0].substr(sizeof kErrorPrefix - 1);
  }

  std::string dir_;
  std::string config_;
  std::string state_dir_;
};

TEST_F(ConfigCheckTest, GoodConfigPrintsOneSummaryLineAndCreatesNothing) {
  const std::vector<int> ports = FreePorts(3);
  WriteConfig(GoodConfig(ports[0], ports[1], 9));
  RunResult result = Check({"--config=" + config_,
                            absl::StrCat("--route=127.0.0.1:", ports[2], "=127.0.0.1:9"),
                            "--workers=2", "--admin=127.0.0.1:0"});
  ASSERT_EQ(result.status.code, 0) << result.status.Describe() << result.err;
  std::vector<std::string> lines = Lines(result.out);
  ASSERT_EQ(lines.size(), 1u) << result.out;
  EXPECT_TRUE(absl::StartsWith(
      lines[0], "gateway: configuration ok: 3 route(s), 4 upstream(s), 2 worker(s), detectors "
                "takeover_marker,planned_stop_file,"))
      << lines[0];
  EXPECT_FALSE(Exists(state_dir_)) << "--check created the state directory";
}

TEST_F(ConfigCheckTest, BadConfigsExit78WithOneLine) {
  int listen = FreePort();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"routes\": [", "gateway.json"},  // bad JSON
      {absl::StrCat(R"({"routes": [{"listen": "127.0.0.1:)", listen,
                    R"(", "upstream": "127.0.0.1:9", "tls": true}]})"),
       "unknown key 'tls'"},
      {absl::StrCat(R"({"routes": [{"listen": "127.0.0.1:)", listen,
                    R"(", "upstream": "127.0.0.1:9", "health_check": {"interval": "1s", "timeout": "2s"}}]})"),
       "health_check: timeout is longer than interval"},
      {absl::StrCat(R"({"routes": [{"name": "a", "listen": "127.0.0.1:)", listen,
                    R"(", "upstream": "127.0.0.1:9"}, {"name": "b", "listen": "127.0.0.1:)", listen,
                    R"(", "upstream": "127.0.0.1:9"}]})"),
       absl::StrCat("127.0.0.1:", listen)},
  };
  for (const auto& [config, expected] : cases) {
    WriteConfig(config);
    std::string error = CheckError();
    EXPECT_TRUE(absl::StrContains(error, expected)) << config << " -> " << error;
  }
  EXPECT_FALSE(Exists(state_dir_));
}

TEST_F(ConfigCheckTest, BadFlagsExit78WithOneLine) {
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{{"--admin=nonsense"},
                                             {"--drain_timeout=forever"},
                                             {"--detectors=nosuch"},
                                             {"--route=127.0.0.1:1"},
                                             {"--detector_plugin=/nonexistent/libx.so"}}) {
    RunResult result = Check(flags);
    EXPECT_EQ(result.status.code, 78) << flags[0] << ": " << result.err;
    std::vector<std::string> lines = Lines(result.err);
    ASSERT_EQ(lines.size(), 1u) << flags[0] << ": " << result.err;
    EXPECT_TRUE(absl::StartsWith(lines[0], kErrorPrefix)) << lines[0];
    EXPECT_EQ(result.out, "");
  }
}

TEST_F(ConfigCheckTest, BusyListenPortStillPasses) {
  EchoServer busy;  // holds its port, as the running gateway would
  RunResult result = Check({absl::StrCat("--route=127.0.0.1:", busy.port(), "=127.0.0.1:9"),
                            absl::StrCat("--admin=127.0.0.1:", busy.port())});
  EXPECT_EQ(result.status.code, 0) << result.err;
  EXPECT_TRUE(absl::StartsWith(result.out, "gateway: configuration ok: 1 route(s)")) << result.out;
}

TEST_F(ConfigCheckTest, SighupRefusesTheBadConfigWithTheSameMessage) {
  EchoServer upstream;
  int port = FreePort();
  WriteConfig(GoodConfig(port, FreePort(), upstream.port()));
  Gateway gw(TestName(), Gateway::Options{{"--config=" + config_}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  WriteConfig(R"({"routes": [], "extra": 1})");
  std::string error = CheckError();
  ASSERT_TRUE(absl::StrContains(error, "unknown key 'extra'")) << error;
  kill(gw.pid(), SIGHUP);
  std::string expected = "SIGHUP: keeping the current routes: " + error;
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(gw.Log(), expected); }, absl::Seconds(10)))
      << "expected: " << expected << "\n" << gw.Log();
  EXPECT_TRUE(Echoes(port));
}

TEST_F(ConfigCheckTest, ReplaceRefusesABadConfigAndTheOldGatewayKeepsServing) {
  EchoServer upstream;
  int port = FreePort();
  WriteConfig(GoodConfig(port, FreePort(), upstream.port()));
  Gateway gw(TestName(), Gateway::Options{{"--config=" + config_}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  ASSERT_TRUE(Echoes(port));
  WriteConfig(R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "tls": 1}]})");
  std::string error = CheckError();

  RunResult replaced = Gatewayctl({"replace", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(replaced.status.code, 1) << replaced.err << replaced.out;
  std::vector<std::string> lines = Lines(replaced.err);
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(absl::StrContains(
      lines.back(), "replace refused: the new configuration does not check: " + error))
      << replaced.err;
  EXPECT_TRUE(gw.child().Running());
  EXPECT_TRUE(Echoes(port)) << gw.Log();
  nlohmann::json instance =
      nlohmann::json::parse(ReadText(gw.state_dir() + "/instance.json"), nullptr, false);
  EXPECT_EQ(instance["pid"], gw.pid());
  // Still replaceable once the config is good again.
  WriteConfig(GoodConfig(port, FreePort(), upstream.port()));
  RunResult again = Gatewayctl({"replace", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(again.status.code, 0) << again.err << again.out << gw.Log();
  EXPECT_TRUE(Echoes(port));
  RunResult stopped = Gatewayctl({"stop", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(stopped.status.code, 0) << stopped.err;
}

// Children of `pid` that still exist, zombies included.
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> children;
  RunResult ps = RunCommand({"/bin/sh", "-c", absl::StrCat("ps -o pid= --ppid ", pid)});
  for (absl::string_view line : absl::StrSplit(ps.out, '\n', absl::SkipWhitespace())) {
    int child = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &child)) children.push_back(child);
  }
  return children;
}

TEST_F(ConfigCheckTest, ReplaceKillsACheckThatHangs) {
  EchoServer upstream;
  int port = FreePort();
  Gateway gw(TestName(),
             Gateway::Options{{absl::StrCat("--route=127.0.0.1:", port, "=127.0.0.1:",
                                            upstream.port())}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  std::string wrapper = dir_ + "/gateway-hangs";
  {
    std::ofstream script(wrapper);
    script << "#!/bin/sh\ncase \" $* \" in *\" --check \"*) exec sleep 600;; esac\nexec "
           << Runfile("gateway/gateway") << " \"$@\"\n";
  }
  chmod(wrapper.c_str(), 0755);
  absl::Time start = absl::Now();
  RunResult replaced =
      Gatewayctl({"replace", "--state_dir=" + gw.state_dir(), "--binary=" + wrapper});
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(replaced.status.code, 1) << replaced.err;
  EXPECT_TRUE(absl::StrContains(replaced.err,
                                "replace refused: the new configuration does not check: "))
      << replaced.err;
  EXPECT_TRUE(absl::StrContains(replaced.err, "did not finish within 10s and was killed"))
      << replaced.err;
  EXPECT_GE(took, absl::Seconds(9));
  EXPECT_LT(took, absl::Seconds(20));
  // Serving all along, and the check was killed and reaped.
  EXPECT_TRUE(Echoes(port));
  EXPECT_TRUE(gw.child().Running());
  EXPECT_TRUE(WaitFor([&] { return ChildrenOf(gw.pid()).empty(); }, absl::Seconds(2)))
      << "children left: " << ChildrenOf(gw.pid()).size();
}

TEST_F(ConfigCheckTest, UnitChecksBeforeStartAndReload) {
  RunResult unit = Gatewayctl({"unit", "--gateway_path=/usr/bin/gateway", "--drain_timeout=1m"});
  ASSERT_EQ(unit.status.code, 0) << unit.err;
  EXPECT_TRUE(
      absl::StrContains(unit.out, "ExecStartPre=/usr/bin/gateway --check --drain_timeout=1m\n"))
      << unit.out;
  EXPECT_TRUE(absl::StrContains(unit.out,
                                "ExecReload=/usr/bin/gateway --check --drain_timeout=1m\n"
                                "ExecReload=/bin/kill -HUP $MAINPID\n"))
      << unit.out;
  EXPECT_TRUE(absl::StrContains(unit.out, "ExecStart=/usr/bin/gateway --drain_timeout=1m\n"));
}

}  // namespace
}  // namespace gateway::testing
