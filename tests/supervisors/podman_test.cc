// The matrix rows for a real container runtime (SPEC 7): podman 4 with runc
// and --restart=on-failure, the host's root as a copy-on-write rootfs (no
// image, no registry), the binaries and the state directory bound in.
// `podman stop` is planned (with the gateway as PID 1, and behind --init's
// catatonit, named podman-init); `kill -TERM 1` from `podman exec` is
// unexpected and restarted. Each asserts podman's own view (inspect,
// events) and the record.
#include <unistd.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/supervisors/podman_testing.h"
#include "tests/supervisors/supervisor_testing.h"

namespace gateway::testing {
namespace {

class PodmanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (auto reason = PodmanSkipReason()) skip_reason_ = new std::string(*reason);
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) GTEST_SKIP() << *skip_reason_;
    dir_ = std::make_unique<ScratchDir>("podman");
    name_ = absl::StrCat("gwsup-", getpid(), "-", CurrentTestName());
  }

  void TearDown() override {
    if (name_.empty()) return;
    // stop -t 0 first: a bare rm -f during a hanging stop can leave runc's
    // container running.
    Sh(absl::StrCat(kPodman, " stop -t 0 ", name_, " >/dev/null 2>&1; ", kPodman, " rm -f ", name_,
                    " >/dev/null 2>&1; true"));
  }

  // Runs the gateway as the container's process (with catatonit as PID 1
  // when `init`); returns its instance.json once it runs.
  nlohmann::json Run(bool init) {
    RunResult run = Sh(
        absl::StrCat(kPodman, " run -d --name ", name_, " --network=none ", kPodmanUlimits, " -v ",
                     dir_->bin(), ":/opt/svc -v ", dir_->state(), ":/tmp/st --restart=on-failure ",
                     init ? "--init " : "", "--rootfs /:O /opt/svc/gateway --state_dir=/tmp/st"),
        absl::Seconds(60));
    EXPECT_EQ(run.status.code, 0) << run.err;
    return WaitForInstance(dir_->state(), nullptr);
  }

  // podman's own view: "Status ExitCode RestartCount".
  std::string Inspect() {
    return std::string(absl::StripAsciiWhitespace(
        Sh(absl::StrCat(kPodman, " inspect ", name_,
                        " --format '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}'"))
            .out));
  }

  void StopIsPlannedAndNotRestarted(bool init) {
    nlohmann::json instance = Run(init);
    ASSERT_TRUE(instance.is_object()) << "the gateway did not start in the container";
    RunResult stop = Sh(absl::StrCat(kPodman, " stop -t 10 ", name_));
    EXPECT_EQ(stop.status.code, 0) << stop.err;
    nlohmann::json record = WaitForRecordOf(dir_->state(), instance);
    ExpectStopRecord(record, {"planned", "container_pid1", 0});
    if (init) {
      EXPECT_TRUE(absl::StrContains(record.value("evidence", ""), "podman-init"))
          << record.value("evidence", "");
    }
    absl::SleepFor(absl::Seconds(1));  // would a restart policy kick in?
    EXPECT_EQ(Inspect(), "exited 0 0");
  }

  static std::string* skip_reason_;
  std::unique_ptr<ScratchDir> dir_;
  std::string name_;
};

std::string* PodmanTest::skip_reason_ = nullptr;

TEST_F(PodmanTest, StopIsPlannedAndNotRestarted) { StopIsPlannedAndNotRestarted(false); }

TEST_F(PodmanTest, StopWithInitIsPlannedAndNotRestarted) { StopIsPlannedAndNotRestarted(true); }

TEST_F(PodmanTest, ExecKillOfPid1IsUnexpectedAndRestarted) {
  nlohmann::json before = Run(false);
  ASSERT_TRUE(before.is_object()) << "the gateway did not start in the container";
  std::string since = absl::StrCat(absl::ToUnixSeconds(absl::Now()) - 1);
  // Its status is not asserted: the shell dies with the container, and podman
  // may fail to find the exec session's exit code then.
  Sh(absl::StrCat(kPodman, " exec ", name_, " sh -c 'kill -TERM 1; sleep 0.3'"));
  ExpectStopRecord(WaitForRecordOf(dir_->state(), before), {"unexpected", "", 1});
  ASSERT_TRUE(WaitForInstance(dir_->state(), before).is_object()) << "not restarted";
  std::string inspected;
  EXPECT_TRUE(WaitFor([&] { return (inspected = Inspect()) == "running 0 1"; }, absl::Seconds(10)))
      << "status, exit code, RestartCount: " << inspected;
  // inspect resets the exit code on restart; the died event keeps it.
  RunResult died = Sh(absl::StrCat(kPodman, " events --stream=false --since ", since,
                                   " --filter container=", name_,
                                   " --filter event=died --format '{{.ContainerExitCode}}'"));
  EXPECT_EQ(absl::StripAsciiWhitespace(died.out), "1") << died.err;
}

}  // namespace
}  // namespace gateway::testing
