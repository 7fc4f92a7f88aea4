// Black-box: `gatewayctl unit` and `gatewayctl k8s` print what a deployment
// needs (stop timeouts above the drain budget, restart policy, readiness);
// the unit passes `systemd-analyze verify`. That the unit really runs under
// systemd is shown by tests/supervisors.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

TEST(GatewayctlUnitTest, PrintsNotifyUnitThatRestartsOnlyUnexpectedStops) {
  RunResult unit = Gatewayctl({"unit", "--gateway_path=" + Runfile("gateway/gateway")});
  ASSERT_TRUE(unit.status.exited && unit.status.code == 0) << unit.err;
  for (const char* line :
       {"Type=notify\n", "NotifyAccess=all\n", "Restart=on-failure\n",
        "RestartPreventExitStatus=78\n", "KillMode=mixed\n", "TimeoutStopSec=45s\n",
        "RuntimeDirectory=gateway\n", "NoNewPrivileges=yes\n", "ProtectSystem=strict\n",
        "WantedBy=multi-user.target\n"}) {
    EXPECT_TRUE(absl::StrContains(unit.out, line)) << "missing " << line << unit.out;
  }
  EXPECT_TRUE(absl::StrContains(unit.out, "ExecStart=" + Runfile("gateway/gateway") + "\n"));
}

TEST(GatewayctlUnitTest, PassesSystemdAnalyzeVerify) {
  if (!Exists("/usr/bin/systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  std::string dir = FreshTempDir("unit-verify");
  RunResult unit = Gatewayctl({"unit", "--gateway_path=" + Runfile("gateway/gateway")});
  ASSERT_EQ(unit.status.code, 0) << unit.err;
  std::string path = dir + "/gateway.service";
  ASSERT_EQ(RunCommand({"/bin/sh", "-c", "cat > '" + path + "' <<'EOF'\n" + unit.out + "EOF\n"})
                .status.code,
            0);
  RunResult verify = RunCommand({"/usr/bin/systemd-analyze", "verify", path});
  EXPECT_EQ(verify.status.code, 0) << verify.out << verify.err;
}

TEST(GatewayctlUnitTest, StopTimeoutFollowsTheDrainBudget) {
  RunResult unit = Gatewayctl({"unit", "--gateway_path=/usr/bin/gateway", "--drain_timeout=60s",
                               "--watchdog=10s", "--user"});
  ASSERT_EQ(unit.status.code, 0) << unit.err;
  EXPECT_TRUE(absl::StrContains(unit.out, "TimeoutStopSec=75s\n")) << unit.out;
  EXPECT_TRUE(absl::StrContains(unit.out, "ExecStart=/usr/bin/gateway --drain_timeout=1m\n"))
      << unit.out;
  EXPECT_TRUE(absl::StrContains(unit.out, "WatchdogSec=10s\n")) << unit.out;
  EXPECT_TRUE(absl::StrContains(unit.out, "WantedBy=default.target\n")) << unit.out;
}

TEST(GatewayctlUnitTest, RelativeGatewayPathIsAUsageError) {
  RunResult unit = Gatewayctl({"unit", "--gateway_path=bin/gateway"});
  EXPECT_EQ(unit.status.code, 2);
  EXPECT_TRUE(absl::StrContains(unit.err, "must be absolute")) << unit.err;
}

TEST(GatewayctlK8sTest, PrintsGracePeriodAboveDrainAndReadinessOnReadyz) {
  RunResult manifest = Gatewayctl({"k8s", "--drain_timeout=20s", "--image=example/gw:1"});
  ASSERT_EQ(manifest.status.code, 0) << manifest.err;
  for (const char* line :
       {"kind: Deployment\n", "terminationGracePeriodSeconds: 40\n", "path: /readyz\n",
        "containerPort: 9901\n", "terminationMessagePath: /dev/termination-log\n",
        "image: example/gw:1\n", "\"--drain_timeout=20s\""}) {
    EXPECT_TRUE(absl::StrContains(manifest.out, line)) << "missing " << line << manifest.out;
  }
}

TEST(GatewayctlK8sTest, JsonWrapsTheManifest) {
  RunResult manifest = Gatewayctl({"k8s", "--json"});
  ASSERT_EQ(manifest.status.code, 0) << manifest.err;
  nlohmann::json j = nlohmann::json::parse(manifest.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << manifest.out;
  EXPECT_TRUE(absl::StrContains(j.value("manifest", ""), "terminationGracePeriodSeconds: 50"));
}

TEST(GatewayctlK8sTest, SetsAShutdownDelayAndCountsItInTheGracePeriod) {
  // Default: 5 s of lame duck + 30 s drain + 15 s margin.
  RunResult manifest = Gatewayctl({"k8s"});
  ASSERT_EQ(manifest.status.code, 0) << manifest.err;
  EXPECT_TRUE(absl::StrContains(manifest.out, "\"--shutdown_delay=5s\"")) << manifest.out;
  EXPECT_TRUE(absl::StrContains(manifest.out, "terminationGracePeriodSeconds: 50\n"))
      << manifest.out;
  EXPECT_TRUE(absl::StrContains(manifest.out, "load balancers drop the pod from the endpoints"))
      << "the manifest does not say why";
  RunResult none = Gatewayctl({"k8s", "--shutdown_delay=0s"});
  ASSERT_EQ(none.status.code, 0) << none.err;
  EXPECT_FALSE(absl::StrContains(none.out, "\"--shutdown_delay=")) << none.out;
  EXPECT_TRUE(absl::StrContains(none.out, "terminationGracePeriodSeconds: 45\n")) << none.out;
}

TEST(GatewayctlK8sTest, NameNamesTheDeploymentAndItsStateVolume) {
  RunResult manifest = Gatewayctl({"k8s", "--name=edge-7"});
  ASSERT_EQ(manifest.status.code, 0) << manifest.err;
  for (const char* line : {"  name: edge-7\n", "app: edge-7\n", "- name: edge-7-state\n"}) {
    EXPECT_TRUE(absl::StrContains(manifest.out, line)) << "missing " << line << manifest.out;
  }
  RunResult bad = Gatewayctl({"k8s", "--name=Edge_7"});
  EXPECT_EQ(bad.status.code, 2);
  EXPECT_TRUE(absl::StrContains(bad.err, "is not a Kubernetes name")) << bad.err;
}

TEST(GatewayctlUnitTest, ShutdownDelayIsPassedAndAddedToTheStopTimeout) {
  RunResult unit = Gatewayctl({"unit", "--gateway_path=/usr/bin/gateway", "--drain_timeout=60s",
                               "--shutdown_delay=10s"});
  ASSERT_EQ(unit.status.code, 0) << unit.err;
  EXPECT_TRUE(absl::StrContains(unit.out, "TimeoutStopSec=85s\n")) << unit.out;
  EXPECT_TRUE(absl::StrContains(
      unit.out, "ExecStart=/usr/bin/gateway --drain_timeout=1m --shutdown_delay=10s\n"))
      << unit.out;
  RunResult bad = Gatewayctl({"unit", "--gateway_path=/usr/bin/gateway", "--shutdown_delay=soon"});
  EXPECT_EQ(bad.status.code, 2);
  EXPECT_TRUE(absl::StrContains(bad.err, "bad duration 'soon' for --shutdown_delay")) << bad.err;
}

}  // namespace
}  // namespace gateway::testing
