// Black-box (issue 13, "operator truth under hostile conditions"): what
// gatewayctl replace --binary= executes, and what gatewayctl stop says and
// exits with, against the real gateway and gatewayctl.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

constexpr uid_t kNobody = 65534;

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

nlohmann::json ParseJson(const std::string& text) {
  return nlohmann::json::parse(text, nullptr, false);
}

std::string Quote(const std::string& text) { return "'" + text + "'"; }

// A copy of the real gateway binary at `path`, with `mode`.
void CopyGatewayTo(const std::string& path, mode_t mode) {
  ASSERT_EQ(RunCommand({"/bin/cp", "-L", Runfile("gateway/gateway"), path}).status.code, 0);
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
}

std::string ExeOf(pid_t pid) {
  char buffer[4096];
  ssize_t n = readlink(absl::StrCat("/proc/", pid, "/exe").c_str(), buffer, sizeof buffer - 1);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// One request on the gateway's control socket, as any local client with
// our uid could send it (no gatewayctl in between); the first reply line.
std::string AskControlSocket(const std::string& state_dir, const nlohmann::json& request) {
  // Bazel's TEST_TMPDIR paths are longer than sun_path: go through the
  // directory's descriptor, as gatewayctl does.
  int dir = open(state_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return "open state dir failed: " + std::string(std::strerror(errno));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string path = absl::StrCat("/proc/self/fd/", dir, "/control.sock");
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  int connected = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int connect_errno = errno;
  close(dir);
  if (connected != 0) {
    close(fd);
    return "connect failed: " + std::string(std::strerror(connect_errno));
  }
  std::string line = request.dump() + "\n";
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    close(fd);
    return "write failed";
  }
  std::string reply;
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (reply.find('\n') == std::string::npos && absl::Now() < deadline) {  // bounded
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buffer[4096];
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return reply.substr(0, reply.find('\n'));
}

class OperatorTruthCtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gw_ = std::make_unique<Gateway>(TestName());
    ASSERT_TRUE(gw_->WaitReady()) << gw_->Log();
    dir_ = FreshTempDir(TestName() + "-bin");  // root-owned 0700, under TEST_TMPDIR
  }
  void TearDown() override {
    if (gw_ != nullptr && gw_->child().Running()) {
      kill(gw_->pid(), SIGCONT);
      Gatewayctl({"stop", "--timeout=20s", "--state_dir=" + gw_->state_dir()});
    }
  }
  // gatewayctl replace run with `cwd` as its working directory.
  RunResult ReplaceFrom(const std::string& cwd, const std::string& binary) {
    return RunCommand({"/bin/sh", "-c",
                       absl::StrCat("cd ", Quote(cwd), " && exec ",
                                    Quote(Runfile("tools/gatewayctl/gatewayctl")),
                                    " replace --json --timeout=30s --state_dir=",
                                    Quote(gw_->state_dir()), " --binary=", Quote(binary))},
                      BaseEnvironment(), absl::Seconds(60));
  }
  // The replacement was refused: one line naming `reason`, and the same
  // gateway still serves, having started nothing.
  void ExpectRefused(const RunResult& replaced, const std::string& reason) {
    EXPECT_EQ(replaced.status.code, 1) << replaced.err << replaced.out;
    EXPECT_EQ(CountOf(replaced.err, "\n"), 1) << replaced.err;
    EXPECT_TRUE(absl::StartsWith(replaced.err, "gatewayctl: replace refused: ")) << replaced.err;
    EXPECT_TRUE(absl::StrContains(replaced.err, reason)) << replaced.err;
    EXPECT_TRUE(gw_->child().Running());
    EXPECT_FALSE(absl::StrContains(gw_->Log(), "started successor")) << gw_->Log();
    EXPECT_EQ(GatewayProcessesFor(gw_->state_dir()).size(), 1u);
  }

  std::unique_ptr<Gateway> gw_;
  std::string dir_;
};

// Item 8: ./x means the caller's ./x, not one in the gateway's directory.
TEST_F(OperatorTruthCtlTest, ReplaceResolvesARelativeBinaryInTheCallersDirectory) {
  CopyGatewayTo(dir_ + "/gateway-next", 0755);
  RunResult replaced = ReplaceFrom(dir_, "./gateway-next");
  ASSERT_EQ(replaced.status.code, 0) << replaced.err << replaced.out;
  nlohmann::json result = ParseJson(replaced.out);
  pid_t successor = result.value("new_pid", 0);
  ASSERT_GT(successor, 0) << replaced.out;
  EXPECT_EQ(ExeOf(successor), dir_ + "/gateway-next");
  ExitStatus old = gw_->Wait();
  EXPECT_TRUE(old.exited && old.code == 0) << old.Describe();
  EXPECT_EQ(result["record"]["class"], "takeover");
  RunResult stop = Gatewayctl({"stop", "--timeout=20s", "--state_dir=" + gw_->state_dir()});
  EXPECT_EQ(stop.status.code, 0) << stop.err;
}

// Item 9: binaries that someone other than root or the gateway's user
// could have written are never executed.
TEST_F(OperatorTruthCtlTest, ReplaceRefusesABinaryOthersCanWrite) {
  std::string binary = dir_ + "/gateway-o+w";
  CopyGatewayTo(binary, 0757);
  ExpectRefused(ReplaceFrom(dir_, binary), binary + " is writable by others (mode 0757)");
}

TEST_F(OperatorTruthCtlTest, ReplaceRefusesABinaryOwnedByAnotherUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown a binary to nobody";
  std::string binary = dir_ + "/gateway-nobody";
  CopyGatewayTo(binary, 0755);
  ASSERT_EQ(chown(binary.c_str(), kNobody, kNobody), 0);
  ExpectRefused(ReplaceFrom(dir_, binary),
                binary + " is owned by uid 65534, not by root or uid 0 (the gateway's user)");
}

TEST_F(OperatorTruthCtlTest, ReplaceRefusesABinaryInADirectoryOthersCanWrite) {
  std::string open_dir = dir_ + "/open";
  ASSERT_EQ(mkdir(open_dir.c_str(), 0700), 0);
  ASSERT_EQ(chmod(open_dir.c_str(), 0777), 0);
  CopyGatewayTo(open_dir + "/gateway", 0755);
  ExpectRefused(ReplaceFrom(dir_, open_dir + "/gateway"),
                "directory " + open_dir + " is writable by others (mode 0777)");
}

// Every directory up to / counts, as for sudo: a sticky, world-writable
// /tmp is refused too, even for a root-owned 0755 file in a 0755 directory.
TEST_F(OperatorTruthCtlTest, ReplaceRefusesABinaryUnderTmp) {
  struct stat tmp;
  ASSERT_EQ(stat("/tmp", &tmp), 0);
  if ((tmp.st_mode & S_IWOTH) == 0) GTEST_SKIP() << "/tmp is not world-writable here";
  char base[] = "/tmp/gateway-trust-XXXXXX";
  ASSERT_NE(mkdtemp(base), nullptr);
  std::string dir = base;
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  CopyGatewayTo(dir + "/gateway", 0755);
  RunResult replaced = ReplaceFrom(dir_, dir + "/gateway");
  RunCommand({"/bin/rm", "-rf", dir});
  ExpectRefused(replaced, "directory /tmp is writable by others (mode 1777)");
}

// The gateway is the one that execs: it checks again, whoever asks.
TEST_F(OperatorTruthCtlTest, GatewayRefusesAnUntrustedBinaryFromAnyClient) {
  std::string binary = dir_ + "/gateway-o+w";
  CopyGatewayTo(binary, 0777);
  struct Case {
    nlohmann::json binary;
    std::string reason;
  };
  for (const Case& c : {Case{binary, binary + " is writable by others (mode 0777)"},
                        Case{"gateway-next", "the binary must be an absolute path, not 'gateway-next'"},
                        Case{42, "\"binary\" must be a string"}}) {
    std::string reply =
        AskControlSocket(gw_->state_dir(), {{"cmd", "replace"}, {"binary", c.binary}});
    nlohmann::json j = ParseJson(reply);
    ASSERT_TRUE(j.is_object()) << c.binary << ": " << reply;
    EXPECT_EQ(j.value("ok", true), false) << c.binary << ": " << reply;
    EXPECT_EQ(j.value("error", ""), "replace refused: " + c.reason) << reply;
  }
  EXPECT_TRUE(gw_->child().Running());
  EXPECT_FALSE(absl::StrContains(gw_->Log(), "started successor")) << gw_->Log();
  EXPECT_TRUE(absl::StrContains(gw_->Log(), "replace refused: " + binary + " is writable by others"))
      << gw_->Log();
  EXPECT_EQ(GatewayProcessesFor(gw_->state_dir()).size(), 1u);
}

// Item 10: the exit status follows the recorded verdict.
TEST(OperatorTruthStopTest, StopThatIsNotPlannedExitsOne) {
  // A chain without planned_stop_file: the marker cannot decide the stop.
  Gateway::Options options;
  options.flags = {"--detectors=systemd,interactive"};
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  RunResult stop = Gatewayctl({"stop", "--timeout=20s", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(stop.status.code, 1) << stop.out << stop.err;
  EXPECT_TRUE(absl::StrContains(
      stop.out, absl::StrCat("stopped pid ", gw.pid(), ": unexpected (no detector), exit status 1")))
      << stop.out;
  EXPECT_TRUE(absl::EndsWith(stop.err, absl::StrCat("gatewayctl: the stop of pid ", gw.pid(),
                                                    " was not planned: it recorded unexpected, "
                                                    "exit status 1\n")))
      << stop.err;
  EXPECT_EQ(gw.Wait().code, 1);
  EXPECT_EQ(gw.Record()["class"], "unexpected");
}

TEST(OperatorTruthStopTest, StopSaysHowItWillEscalateBeforeWaiting) {
  for (const char* escalate : {"", "--escalate=kill", "--escalate=none"}) {
    Gateway gw(absl::StrCat(TestName(), escalate));
    ASSERT_TRUE(gw.WaitReady()) << gw.Log();
    std::vector<std::string> args = {"stop", "--state_dir=" + gw.state_dir()};
    if (*escalate != '\0') args.push_back(escalate);
    RunResult stop = Gatewayctl(args);
    EXPECT_EQ(stop.status.code, 0) << stop.err;
    std::string then = std::string(escalate) == "--escalate=none" ? "giving up (--escalate=none)"
                                                                  : "SIGKILL";
    EXPECT_EQ(stop.err, absl::StrCat("sent SIGTERM to pid ", gw.pid(), "; waiting up to 45s, then ",
                                     then, "\n"))
        << escalate;
    EXPECT_EQ(gw.Wait().code, 0);
  }
}

TEST(OperatorTruthStopTest, StopOfAStoppedGatewayGivesUpWithoutEscalation) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  gw.child().Signal(SIGSTOP);
  absl::Time start = absl::Now();
  RunResult stop = RunCommand({Runfile("tools/gatewayctl/gatewayctl"), "stop", "--escalate=none",
                               "--timeout=120s", "--state_dir=" + gw.state_dir()},
                              BaseEnvironment(), absl::Seconds(150));
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(stop.status.code, 1) << stop.err;
  // Documented: it gives up once the gateway has stayed stopped for 5s,
  // not after --timeout (generous bound for a loaded machine).
  EXPECT_LT(took, absl::Seconds(60));
  EXPECT_EQ(stop.err, absl::StrCat("sent SIGTERM to pid ", gw.pid(),
                                   "; waiting up to 120s, then giving up (--escalate=none)\n"
                                   "gatewayctl: pid ", gw.pid(),
                                   " is stopped (SIGSTOP or a debugger) and cannot act on SIGTERM; "
                                   "gave up after 5s without SIGKILL (--escalate=none); the SIGTERM "
                                   "and the planned-stop marker stay pending (kill -CONT ",
                                   gw.pid(), " lets it stop)\n"));
  std::printf("gatewayctl stop --escalate=none gave up on a stopped gateway after %s\n",
              absl::FormatDuration(took).c_str());
  EXPECT_TRUE(gw.child().Running()) << "it must not have been killed";
  // What it said holds: continued, the gateway stops as planned.
  gw.child().Signal(SIGCONT);
  ExitStatus exit = gw.Wait();
  EXPECT_TRUE(exit.exited && exit.code == 0) << exit.Describe() << gw.Log();
  EXPECT_EQ(gw.Record()["class"], "planned");
  EXPECT_EQ(gw.Record()["detector"], "planned_stop_file");
}

TEST(OperatorTruthStopTest, StopOfAStoppedGatewayEscalatesToSigkillByDefault) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  gw.child().Signal(SIGSTOP);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string stat = ReadText(absl::StrCat("/proc/", gw.pid(), "/stat"));
        size_t paren = stat.rfind(')');
        return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'T';
      },
      absl::Seconds(10)));
  RunResult stop = Gatewayctl({"stop", "--timeout=2s", "--state_dir=" + gw.state_dir()});
  EXPECT_EQ(stop.status.code, 1);
  EXPECT_EQ(stop.err, absl::StrCat("sent SIGTERM to pid ", gw.pid(),
                                   "; waiting up to 2s, then SIGKILL\n"
                                   "gatewayctl: pid ", gw.pid(),
                                   " did not exit within 2s (it was stopped: SIGSTOP or a "
                                   "debugger); sent SIGKILL\n"));
  EXPECT_EQ(gw.Wait().signal, SIGKILL);
}

}  // namespace
}  // namespace gateway::testing
