// The matrix rows for supervisors that run the gateway as their direct
// child and have no hand-off protocol (SPEC 7): s6, runit and supervisord.
// The same two rows for each: their own stop command is planned (exit 0,
// stays down), a kill -TERM from another process is unexpected (exit 1,
// restarted). Each asserts the supervisor's status output and the record.
#include <signal.h>

#include <functional>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/supervisors/supervisor_testing.h"

namespace gateway::testing {
namespace {

// How to drive one supervisor. Commands are shell lines; `dir` is the
// test's ScratchDir.
struct ProcessSupervisor {
  std::string name;                   // also the test parameter's name
  std::vector<std::string> programs;  // skipped when one is missing
  // Writes the supervisor's configuration and returns its command line.
  std::function<std::vector<std::string>(const ScratchDir& dir)> configure;
  std::function<std::string(const ScratchDir&dir)> stop, status, shutdown;
  std::string down;  // in `status` after the planned stop
  std::string up;    // in `status` while running
};

// Names the parameter in test output and test.xml.
void PrintTo(const ProcessSupervisor& s, std::ostream* os) { *os << s.name; }

// The service's run script: the supervisor execs the gateway, so the
// gateway's parent is the supervisor itself.
std::string RunScript(const ScratchDir& dir) {
  return absl::StrCat("#!/bin/sh\nexec ", dir.GatewayCommand(), " 2>>", dir.path(),
                      "/gateway.log\n");
}

ProcessSupervisor S6() {
  ProcessSupervisor s;
  s.name = "s6";
  s.programs = {"s6-svscan", "s6-svc", "s6-svstat", "s6-svscanctl"};
  s.configure = [](const ScratchDir& dir) {
    dir.WriteFile("s6/gw/run", RunScript(dir), 0755);
    return std::vector<std::string>{"/usr/bin/s6-svscan", dir.path() + "/s6"};
  };
  s.stop = [](const ScratchDir& dir) { return "s6-svc -d " + dir.path() + "/s6/gw"; };
  s.status = [](const ScratchDir& dir) { return "s6-svstat " + dir.path() + "/s6/gw"; };
  s.shutdown = [](const ScratchDir& dir) { return "s6-svscanctl -t " + dir.path() + "/s6"; };
  s.down = "down (exitcode 0)";
  s.up = "up (pid ";
  return s;
}

ProcessSupervisor Runit() {
  ProcessSupervisor s;
  s.name = "runit";
  s.programs = {"runsv", "sv"};
  s.configure = [](const ScratchDir& dir) {
    dir.WriteFile("runit/gw/run", RunScript(dir), 0755);
    return std::vector<std::string>{"/usr/bin/runsv", dir.path() + "/runit/gw"};
  };
  s.stop = [](const ScratchDir& dir) { return "sv -w 10 stop " + dir.path() + "/runit/gw"; };
  s.status = [](const ScratchDir& dir) { return "sv status " + dir.path() + "/runit/gw"; };
  s.shutdown = [](const ScratchDir& dir) { return "sv -w 10 exit " + dir.path() + "/runit/gw"; };
  s.down = "down: ";
  s.up = "run: ";
  return s;
}

ProcessSupervisor Supervisord() {
  ProcessSupervisor s;
  s.name = "supervisord";
  s.programs = {"supervisord", "supervisorctl"};
  s.configure = [](const ScratchDir& dir) {
    const std::string& d = dir.path();
    dir.WriteFile(
        "supervisord.conf",
        absl::StrCat("[unix_http_server]\nfile=", d,
                     "/supervisor.sock\n\n"
                     "[supervisord]\nnodaemon=true\nlogfile=",
                     d, "/supervisord.log\npidfile=", d, "/supervisord.pid\nchildlogdir=", d,
                     "\n\n"
                     "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                     "supervisor.rpcinterface:make_main_rpcinterface\n\n"
                     "[supervisorctl]\nserverurl=unix://",
                     d,
                     "/supervisor.sock\n\n"
                     "[program:gw]\ncommand=",
                     dir.GatewayCommand(),
                     "\nautorestart=unexpected\nexitcodes=0\nstartsecs=0\n"
                     "stopwaitsecs=10\n"));
    return std::vector<std::string>{"/usr/bin/supervisord", "-n", "-c", d + "/supervisord.conf"};
  };
  auto ctl = [](const ScratchDir& dir, const std::string& command) {
    return absl::StrCat("supervisorctl -c ", dir.path(), "/supervisord.conf ", command);
  };
  s.stop = [ctl](const ScratchDir& dir) { return ctl(dir, "stop gw"); };
  s.status = [ctl](const ScratchDir& dir) { return ctl(dir, "status gw"); };
  s.shutdown = [ctl](const ScratchDir& dir) { return ctl(dir, "shutdown"); };
  s.down = "STOPPED";
  s.up = "RUNNING";
  return s;
}

class ProcessSupervisorTest : public ::testing::TestWithParam<ProcessSupervisor> {
 protected:
  void SetUp() override {
    const ProcessSupervisor& s = GetParam();
    if (auto missing = MissingProgram(s.programs)) {
      GTEST_SKIP() << *missing << " is not installed (./bazelw installs it)";
    }
    dir_ = std::make_unique<ScratchDir>(s.name);
    Child::Options options;
    options.argv = s.configure(*dir_);
    options.env = BaseEnvironment();
    options.output_dir = dir_->path();
    supervisor_ = std::make_unique<Child>(options);
    instance_ = WaitForInstance(dir_->state(), nullptr);
    ASSERT_TRUE(instance_.is_object())
        << s.name << " did not start the gateway: " << ReadText(dir_->path() + "/gateway.log");
  }

  void TearDown() override {
    if (!supervisor_) return;
    Sh(GetParam().shutdown(*dir_));
    if (supervisor_->Wait(absl::Seconds(15)).timed_out) {
      ADD_FAILURE() << GetParam().name << " did not shut down";
    }
    // Never leave a gateway we started behind (by pid, only if still ours).
    nlohmann::json last = ReadJson(dir_->state() + "/instance.json");
    if (last.is_object() && Exists(dir_->state() + "/running")) {
      kill(last.value("pid", 0), SIGKILL);
    }
  }

  std::string Status() { return Sh(GetParam().status(*dir_)).out; }

  std::unique_ptr<ScratchDir> dir_;
  std::unique_ptr<Child> supervisor_;
  nlohmann::json instance_;
};

TEST_P(ProcessSupervisorTest, StopCommandIsPlannedAndStaysDown) {
  const ProcessSupervisor& s = GetParam();
  EXPECT_TRUE(absl::StrContains(Status(), s.up)) << Status();
  RunResult stop = Sh(s.stop(*dir_));
  EXPECT_EQ(stop.status.code, 0) << stop.out << stop.err;
  ExpectStopRecord(WaitForRecordOf(dir_->state(), instance_), {"planned", "supervisor", 0});
  std::string status;
  EXPECT_TRUE(
      WaitFor([&] { return absl::StrContains(status = Status(), s.down); }, absl::Seconds(10)))
      << status;
  // Still down a moment later: not restarted.
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_TRUE(absl::StrContains(status = Status(), s.down)) << status;
  EXPECT_FALSE(Exists(dir_->state() + "/running")) << "a new gateway started";
}

TEST_P(ProcessSupervisorTest, KillFromAnotherProcessIsUnexpectedAndRestarted) {
  const ProcessSupervisor& s = GetParam();
  SignalFromSibling(instance_.value("pid", 0), SIGTERM);
  ExpectStopRecord(WaitForRecordOf(dir_->state(), instance_), {"unexpected", "", 1});
  nlohmann::json restarted = WaitForInstance(dir_->state(), instance_);
  ASSERT_TRUE(restarted.is_object()) << s.name << " did not restart the gateway";
  std::string new_pid = absl::StrCat("pid ", restarted.value("pid", 0));
  std::string status;
  EXPECT_TRUE(WaitFor(
      [&] {
        status = Status();
        return absl::StrContains(status, s.up) && absl::StrContains(status, new_pid);
      },
      absl::Seconds(10)))
      << "expected " << s.up << " with " << new_pid << ", got: " << status;
}

INSTANTIATE_TEST_SUITE_P(Supervisors, ProcessSupervisorTest,
                         ::testing::Values(S6(), Runit(), Supervisord()),
                         [](const ::testing::TestParamInfo<ProcessSupervisor>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace gateway::testing
