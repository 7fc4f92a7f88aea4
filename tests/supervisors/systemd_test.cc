// The matrix rows for the real systemd 252 (SPEC 7), booted as PID 1 of a
// throwaway systemd-nspawn container (nspawn.sh), running the unit exactly
// as `gatewayctl unit` prints it. Each row asserts systemd's own view
// (systemctl show) and the gateway's stop record.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/supervisors/supervisor_testing.h"

namespace gateway::testing {
namespace {

// One booted container for the whole suite (boot ≈ 1 s).
class SystemdTest : public ::testing::Test {
 protected:
  // A system unit, or one of root's user manager (user@0.service).
  enum class Manager { kSystem, kUser };

  static void SetUpTestSuite() {
    if (getuid() != 0) {
      skip_reason_ = new std::string("needs root to boot systemd-nspawn");
      return;
    }
    if (auto missing = MissingProgram({"systemd-nspawn", "nsenter", "pgrep"})) {
      skip_reason_ = new std::string(*missing + " is not installed (./bazelw installs it)");
      return;
    }
    scratch_ = new ScratchDir("systemd");
    name_ = new std::string(absl::StrCat("gwsup-", getpid()));
    RunResult boot = RunCommand({"/bin/bash", Runfile("tests/supervisors/nspawn.sh"), "boot",
                                 *name_, scratch_->bin(), scratch_->path()},
                                BaseEnvironment(), absl::Seconds(60));
    std::vector<std::string> pids = absl::StrSplit(boot.out, ' ', absl::SkipWhitespace());
    if (boot.status.code != 0 || pids.size() != 2 || !absl::SimpleAtoi(pids[0], &nspawn_pid_) ||
        !absl::SimpleAtoi(pids[1], &leader_)) {
      skip_reason_ = new std::string(absl::StrCat(
          "this machine cannot boot systemd in systemd-nspawn: ", boot.status.Describe(), ": ",
          absl::StripAsciiWhitespace(boot.err)));
    }
  }

  static void TearDownTestSuite() {
    if (nspawn_pid_ > 0) {
      RunCommand({"/bin/bash", Runfile("tests/supervisors/nspawn.sh"), "halt", *name_,
                  absl::StrCat(nspawn_pid_)},
                 BaseEnvironment(), absl::Seconds(30));
    }
    delete scratch_;
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) GTEST_SKIP() << *skip_reason_;
    unit_ = "gw-" + CurrentTestName() + ".service";
  }

  void TearDown() override {
    if (skip_reason_ != nullptr) return;
    // Bounded: a unit stuck in a stop is killed, so the next row starts clean.
    for (Manager manager : {Manager::kSystem, Manager::kUser}) {
      InContainer(absl::StrCat("timeout 20 ", Ctl(manager), " stop 'gw-*.socket' 'gw-*.service' || ",
                               Ctl(manager), " kill -s KILL 'gw-*.service'; true"),
                  absl::Seconds(40));
    }
  }

  // Runs `script` inside the container (all its namespaces).
  static RunResult InContainer(const std::string& script,
                               absl::Duration timeout = absl::Seconds(30)) {
    return Sh(absl::StrCat("nsenter -t ", leader_, " -a sh -c ", ShellQuote(script)), timeout);
  }
  // True when `ss` in the container lists a TCP socket matching `filter`.
  static bool SocketListed(const std::string& filter) {
    return InContainer("ss -Htn " + filter + " | grep -q .").status.code == 0;
  }
  static std::string UserCtl() { return "env XDG_RUNTIME_DIR=/run/user/0 systemctl --user"; }
  static std::string Ctl(Manager manager) {
    return manager == Manager::kUser ? UserCtl() : "systemctl";
  }
  // The container's filesystem, seen from the host.
  static std::string Root() { return absl::StrCat("/proc/", leader_, "/root"); }
  // The unit's state directory (RuntimeDirectory=gateway), seen from the host.
  static std::string StateDir(Manager manager) {
    return Root() + (manager == Manager::kUser ? "/run/user/0/gateway" : "/run/gateway");
  }

  // Installs the unit `gatewayctl unit` prints (plus `flags`, and a drop-in
  // with `dropin` when given) and enables it.
  void InstallPrintedUnit(Manager manager, const std::string& flags = "",
                          const std::string& dropin = "") {
    std::string dir = UnitDir(manager);
    if (manager == Manager::kUser) {
      RunResult user = InContainer("systemctl start user@0.service");
      EXPECT_EQ(user.status.code, 0) << "user@0.service: " << user.err;
    }
    RunResult printed =
        Sh(absl::StrCat(scratch_->gatewayctl(), " unit --gateway_path=/opt/svc/gateway",
                        manager == Manager::kUser ? " --user " : " ", flags));
    EXPECT_EQ(printed.status.code, 0) << printed.err;
    Sh(absl::StrCat("mkdir -p ", Root(), dir));
    std::ofstream(absl::StrCat(Root(), dir, "/", unit_)) << printed.out;
    if (!dropin.empty()) {
      Sh(absl::StrCat("mkdir -p ", Root(), dir, "/", unit_, ".d"));
      std::ofstream(absl::StrCat(Root(), dir, "/", unit_, ".d/test.conf")) << dropin;
    }
    RunResult enabled = InContainer(absl::StrCat(Ctl(manager), " daemon-reload && ", Ctl(manager),
                                                 " enable --quiet ", unit_));
    EXPECT_EQ(enabled.status.code, 0) << "enabling " << unit_ << ": " << enabled.err;
  }

  // InstallPrintedUnit, then starts the unit; returns the gateway's
  // instance.json once it runs.
  nlohmann::json StartPrintedUnit(Manager manager, const std::string& flags = "",
                                  const std::string& dropin = "") {
    InstallPrintedUnit(manager, flags, dropin);
    nlohmann::json previous = ReadJson(StateDir(manager) + "/instance.json");
    RunResult started = InContainer(absl::StrCat(Ctl(manager), " start ", unit_));
    EXPECT_EQ(started.status.code, 0) << "starting " << unit_ << ": " << started.err;
    return WaitForInstance(StateDir(manager), previous);
  }

  static std::string UnitDir(Manager manager) {
    return manager == Manager::kUser ? "/root/.config/systemd/user" : "/etc/systemd/system";
  }

  // Runs a Python `script` with `args` in the container as the transient
  // service `unit` (stopped with the others after the test).
  static void RunPython(const std::string& unit, const char* script,
                        const std::string& args = "") {
    RunResult run = InContainer(absl::StrCat("systemd-run -q --unit=", unit, " python3 -c ",
                                             ShellQuote(script), " ", args));
    EXPECT_EQ(run.status.code, 0) << run.err;
  }

  // An echo server on 127.0.0.1:7001, the routes' upstream.
  static bool StartUpstream();

  // systemctl show: ActiveState, Result, NRestarts, MainPID, ...
  std::map<std::string, std::string> Show(Manager manager) {
    return ParseProperties(
        InContainer(absl::StrCat(Ctl(manager),
                                 " show -p ActiveState,SubState,Result,NRestarts,"
                                 "MainPID,ExecMainStatus,StatusText,WatchdogUSec ",
                                 unit_))
            .out);
  }

  // Waits until systemd shows the unit active again under a new main pid.
  std::map<std::string, std::string> WaitForRestart(Manager manager, const std::string& old_pid) {
    std::map<std::string, std::string> shown;
    WaitFor(
        [&] {
          shown = Show(manager);
          return shown["ActiveState"] == "active" && shown["MainPID"] != old_pid &&
                 shown["MainPID"] != "0";
        },
        absl::Seconds(15));
    return shown;
  }

  // A stray `kill -TERM $MAINPID` from a shell inside the container.
  void KillMainPidFromShell(Manager manager) {
    RunResult kill = InContainer(absl::StrCat("kill -TERM $(", Ctl(manager),
                                              " show -p MainPID --value ", unit_, "); sleep 0.3"));
    EXPECT_EQ(kill.status.code, 0) << kill.err;
  }

  // Runs a planned stop `command` in the container, then asserts the record
  // (planned by `detector`, exit 0) and systemd's view: inactive,
  // Result=success, exit status 0, not restarted.
  void StopAndExpectPlannedAndDown(Manager manager, const nlohmann::json& instance,
                                   const std::string& command, const std::string& detector) {
    RunResult stop = InContainer(command);
    EXPECT_EQ(stop.status.code, 0) << command << ": " << stop.out << stop.err;
    ExpectStopRecord(WaitForRecordOf(StateDir(manager), instance), {"planned", detector, 0});
    std::map<std::string, std::string> shown = Show(manager);
    EXPECT_EQ(shown["ActiveState"], "inactive");
    EXPECT_EQ(shown["Result"], "success");
    EXPECT_EQ(shown["ExecMainStatus"], "0");
    EXPECT_EQ(shown["NRestarts"], "0");
  }

  // After a stray kill: recorded unexpected (exit 1), restarted once.
  void CheckUnexpectedAndRestarted(Manager manager, const nlohmann::json& before) {
    std::string old_pid = absl::StrCat(before.value("pid", 0));
    ExpectStopRecord(WaitForRecordOf(StateDir(manager), before), {"unexpected", "", 1});
    std::map<std::string, std::string> shown = WaitForRestart(manager, old_pid);
    EXPECT_EQ(shown["ActiveState"], "active");
    EXPECT_EQ(shown["NRestarts"], "1");
    EXPECT_NE(shown["MainPID"], old_pid);
  }

  static std::string* skip_reason_;
  static ScratchDir* scratch_;
  static std::string* name_;
  static pid_t nspawn_pid_;
  static pid_t leader_;
  std::string unit_;
};

std::string* SystemdTest::skip_reason_ = nullptr;
ScratchDir* SystemdTest::scratch_ = nullptr;
std::string* SystemdTest::name_ = nullptr;
pid_t SystemdTest::nspawn_pid_ = 0;
pid_t SystemdTest::leader_ = 0;

TEST_F(SystemdTest, SystemctlStopIsPlannedAndUnitEndsInactive) {
  nlohmann::json instance = StartPrintedUnit(Manager::kSystem);
  ASSERT_TRUE(instance.is_object()) << "the gateway did not start under systemd";
  std::map<std::string, std::string> shown = Show(Manager::kSystem);
  // `systemctl start` of a Type=notify unit returns once READY=1 came with
  // STATUS=serving: active, and the status text is the gateway's.
  EXPECT_EQ(shown["ActiveState"], "active");
  EXPECT_EQ(shown["StatusText"], "serving");
  EXPECT_EQ(shown["MainPID"], absl::StrCat(instance.value("pid", 0)));

  StopAndExpectPlannedAndDown(Manager::kSystem, instance, "systemctl stop " + unit_, "systemd");
}

TEST_F(SystemdTest, SystemctlRestartIsPlannedAndUnitRunsAgainWithNewMainPid) {
  nlohmann::json before = StartPrintedUnit(Manager::kSystem);
  ASSERT_TRUE(before.is_object());
  std::string old_pid = absl::StrCat(before.value("pid", 0));
  EXPECT_EQ(InContainer("systemctl restart " + unit_).status.code, 0);
  ExpectStopRecord(WaitForRecordOf(StateDir(Manager::kSystem), before), {"planned", "systemd", 0});
  std::map<std::string, std::string> shown = Show(Manager::kSystem);
  EXPECT_EQ(shown["ActiveState"], "active");
  EXPECT_EQ(shown["Result"], "success");
  EXPECT_EQ(shown["NRestarts"], "0") << "a restart command is not a failure restart";
  EXPECT_NE(shown["MainPID"], old_pid);
  RunResult journal = InContainer("journalctl -q --no-pager -u " + unit_);
  EXPECT_EQ(journal.out.find("Failed"), std::string::npos) << journal.out;
  EXPECT_EQ(journal.out.find("failure"), std::string::npos) << journal.out;
}

TEST_F(SystemdTest, KillFromShellIsUnexpectedAndRestartedOnFailure) {
  nlohmann::json before = StartPrintedUnit(Manager::kSystem);
  ASSERT_TRUE(before.is_object());
  KillMainPidFromShell(Manager::kSystem);
  CheckUnexpectedAndRestarted(Manager::kSystem, before);
}

TEST_F(SystemdTest, GatewayctlStopIsPlannedAndNotRestarted) {
  nlohmann::json instance = StartPrintedUnit(Manager::kSystem);
  ASSERT_TRUE(instance.is_object());
  StopAndExpectPlannedAndDown(Manager::kSystem, instance, "/opt/svc/gatewayctl stop --timeout=20s",
                              "planned_stop_file");
}

TEST_F(SystemdTest, WatchdogDoesNotKillHealthyGateway) {
  nlohmann::json instance = StartPrintedUnit(Manager::kSystem, "--watchdog=2s");
  ASSERT_TRUE(instance.is_object());
  EXPECT_EQ(Show(Manager::kSystem)["WatchdogUSec"], "2s");
  // Two and a half watchdog periods: without WATCHDOG=1 systemd would have
  // killed it (Result=watchdog) and restarted it.
  absl::SleepFor(absl::Seconds(5));
  std::map<std::string, std::string> shown = Show(Manager::kSystem);
  EXPECT_EQ(shown["ActiveState"], "active");
  EXPECT_EQ(shown["Result"], "success");
  EXPECT_EQ(shown["NRestarts"], "0");
  EXPECT_EQ(shown["MainPID"], absl::StrCat(instance.value("pid", 0)));
}

TEST_F(SystemdTest, UserManagerStopIsPlannedBySystemdDetector) {
  nlohmann::json instance = StartPrintedUnit(Manager::kUser);
  ASSERT_TRUE(instance.is_object()) << "the gateway did not start under the user manager";
  EXPECT_EQ(Show(Manager::kUser)["ActiveState"], "active");
  StopAndExpectPlannedAndDown(Manager::kUser, instance, UserCtl() + " stop " + unit_, "systemd");
}

TEST_F(SystemdTest, UserManagerKillFromShellIsUnexpectedAndRestarted) {
  nlohmann::json before = StartPrintedUnit(Manager::kUser);
  ASSERT_TRUE(before.is_object());
  KillMainPidFromShell(Manager::kUser);
  CheckUnexpectedAndRestarted(Manager::kUser, before);
}

// The routes' upstream: echoes every connection until the client closes.
constexpr char kEchoUpstream[] = R"(
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7001)); s.listen(128)
def serve(c):
    while d := c.recv(4096): c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
)";

bool SystemdTest::StartUpstream() {
  if (InContainer("command -v python3 && command -v ss").status.code != 0) return false;
  RunPython("gw-upstream", kEchoUpstream);
  return WaitFor([] { return SocketListed("-l 'sport = :7001'"); }, absl::Seconds(10));
}

// Holds one connection through the gateway (port 7000) for 5 s.
constexpr char kSlowClient[] = R"(
import socket, time
c = socket.create_connection(("127.0.0.1", 7000)); time.sleep(5); c.close()
)";

TEST_F(SystemdTest, DrainLongerThanTimeoutStopSecSurvivesWithExtendTimeout) {
  // The printed unit, its TimeoutStopSec cut to 2 s by a drop-in: only
  // EXTEND_TIMEOUT_USEC keeps systemd from killing the 5 s drain.
  nlohmann::json instance = StartPrintedUnit(
      Manager::kSystem, "--drain_timeout=10s --gateway_args=--route=127.0.0.1:7000=127.0.0.1:7001",
      "[Service]\nTimeoutStopSec=2s\n");
  ASSERT_TRUE(instance.is_object());
  if (!StartUpstream()) GTEST_SKIP() << "needs python3 and ss in the container for the upstream";
  RunPython("gw-client", kSlowClient);
  ASSERT_TRUE(WaitFor([] { return SocketListed("state established 'dport = :7000'"); },
                      absl::Seconds(10)))
      << "the client did not connect through the gateway";

  absl::Time start = absl::Now();
  StopAndExpectPlannedAndDown(Manager::kSystem, instance, "systemctl stop " + unit_, "systemd");
  EXPECT_GT(absl::Now() - start, absl::Seconds(3)) << "the drain should outlast TimeoutStopSec=2s";
  nlohmann::json drain = WaitForRecordOf(StateDir(Manager::kSystem), instance)["drain"];
  EXPECT_EQ(drain.value("connections_at_signal", -1), 1) << drain;
  EXPECT_EQ(drain.value("closed_at_deadline", -1), 0) << drain;
}

// Opens connections through the gateway (port 7000) one after another for
// argv[1] seconds, each echoing a byte; writes "OK FAILED" to argv[2].
constexpr char kClientLoop[] = R"(
import socket, sys, time
ok = failed = 0
end = time.time() + float(sys.argv[1])
while time.time() < end:
    try:
        c = socket.create_connection(("127.0.0.1", 7000), timeout=2)
        c.sendall(b"x")
        if c.recv(1) == b"x": ok += 1
        else: failed += 1
        c.close()
    except OSError:
        failed += 1
    time.sleep(0.005)
open(sys.argv[2], "w").write(f"{ok} {failed}\n")
)";

TEST_F(SystemdTest, GatewayctlReplaceKeepsUnitActiveWithNewMainPid) {
  nlohmann::json before = StartPrintedUnit(
      Manager::kSystem, "--gateway_args=--route=127.0.0.1:7000=127.0.0.1:7001");
  ASSERT_TRUE(before.is_object());
  if (!StartUpstream()) GTEST_SKIP() << "needs python3 and ss in the container for the upstream";
  Sh("rm -f " + Root() + "/run/gw-clients.txt");
  RunPython("gw-clients", kClientLoop, "4 /run/gw-clients.txt");
  absl::SleepFor(absl::Milliseconds(500));  // clients already connecting

  RunResult replace = InContainer("/opt/svc/gatewayctl replace --timeout=20s", absl::Seconds(40));
  EXPECT_EQ(replace.status.code, 0) << replace.out << replace.err;
  ExpectStopRecord(WaitForRecordOf(StateDir(Manager::kSystem), before),
                   {"takeover", "takeover_marker", 0});
  nlohmann::json after = WaitForInstance(StateDir(Manager::kSystem), before);
  ASSERT_TRUE(after.is_object()) << "no successor registered";
  std::map<std::string, std::string> shown = Show(Manager::kSystem);
  EXPECT_EQ(shown["ActiveState"], "active");
  EXPECT_EQ(shown["Result"], "success");
  EXPECT_EQ(shown["NRestarts"], "0");
  EXPECT_EQ(shown["MainPID"], absl::StrCat(after.value("pid", 0))) << "MAINPID= not taken";
  EXPECT_NE(shown["MainPID"], absl::StrCat(before.value("pid", 0)));

  std::string clients;
  ASSERT_TRUE(WaitFor([&] { return !(clients = ReadText(Root() + "/run/gw-clients.txt")).empty(); },
                      absl::Seconds(15)));
  int ok = 0, failed = -1;
  ASSERT_EQ(std::sscanf(clients.c_str(), "%d %d", &ok, &failed), 2) << clients;
  EXPECT_GT(ok, 0) << clients;
  EXPECT_EQ(failed, 0) << "connections failed during the replacement: " << clients;
}

// One connection to the socket unit's port (7100), echoing "ping".
constexpr char kPing[] = R"(
import socket
c = socket.create_connection(("127.0.0.1", 7100), timeout=10)
c.sendall(b"ping"); print(c.recv(4).decode())
)";

TEST_F(SystemdTest, SocketActivatedGatewayServesOnPassedFd) {
  // systemd holds 127.0.0.1:7100; a gateway that tried to bind it itself
  // would fail with the address in use and exit.
  InstallPrintedUnit(Manager::kSystem, "--gateway_args=--route=127.0.0.1:7100=127.0.0.1:7001");
  std::string socket_unit = unit_.substr(0, unit_.size() - std::string(".service").size()) + ".socket";
  std::ofstream(absl::StrCat(Root(), UnitDir(Manager::kSystem), "/", socket_unit))
      << "[Socket]\nListenStream=127.0.0.1:7100\n\n[Install]\nWantedBy=sockets.target\n";
  RunResult listening =
      InContainer("systemctl daemon-reload && systemctl start " + socket_unit);
  ASSERT_EQ(listening.status.code, 0) << listening.err;
  if (!StartUpstream()) GTEST_SKIP() << "needs python3 and ss in the container for the upstream";
  EXPECT_EQ(Show(Manager::kSystem)["ActiveState"], "inactive") << "started before a connection";

  RunResult ping = InContainer(absl::StrCat("python3 -c ", ShellQuote(kPing)));
  EXPECT_EQ(absl::StripAsciiWhitespace(ping.out), "ping") << ping.err;
  std::map<std::string, std::string> shown = Show(Manager::kSystem);
  EXPECT_EQ(shown["ActiveState"], "active");
  EXPECT_EQ(shown["NRestarts"], "0");
}

}  // namespace
}  // namespace gateway::testing
