// Black-box: a hostile local user, run as the real unprivileged account
// `nobody` (setpriv), against a gateway running as root. The user must not
// be able to forge a planned-stop marker the gateway honours, steer it to
// a state directory of their choosing, or use its control socket. The
// state directory is 0700 root, so the realistic attacks need an admin's
// mistake first (a group-writable directory, which the gateway refuses at
// start-up, or one chmod-ed after start-up); both are covered.
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

constexpr uid_t kNobody = 65534;

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

class HostileUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run the gateway as root and nobody";
    // Outside TEST_TMPDIR (under /root, closed to nobody): a world-readable
    // root-owned directory with copies of the binaries nobody may run.
    char base[] = "/tmp/gateway-hostile-XXXXXX";
    ASSERT_NE(mkdtemp(base), nullptr);
    root_ = base;
    chmod(root_.c_str(), 0755);
    ASSERT_EQ(RunCommand({"/bin/cp", Runfile("tools/gatewayctl/gatewayctl"), root_ + "/gatewayctl"})
                  .status.code, 0);
  }
  void TearDown() override {
    if (!root_.empty()) RunCommand({"/bin/rm", "-rf", root_});
  }

  // Runs `script` with sh as uid/gid nobody, no supplementary groups.
  RunResult AsNobody(const std::string& script,
                     std::map<std::string, std::string> env = BaseEnvironment()) {
    return RunCommand({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sh",
                       "-c", script},
                      env);
  }

  std::unique_ptr<Gateway> Start(const std::string& state_dir) {
    Gateway::Options options;
    options.state_dir = state_dir;
    return std::make_unique<Gateway>(absl::StrCat(TestName(), ++started_), options);
  }

  // A valid planned-stop marker for `gw`, as gatewayctl writes it.
  std::string ValidMarkerFor(Gateway& gw) {
    EXPECT_EQ(Gatewayctl({"mark-planned", "--state_dir=" + gw.state_dir()}).status.code, 0);
    std::string path = gw.state_dir() + "/planned-stop.json";
    std::string text = ReadText(path);
    unlink(path.c_str());
    return text;
  }

  // The stop that follows must not be planned, and the record says why.
  void ExpectSigtermStaysUnexpected(Gateway& gw, const std::string& why) {
    SignalFromSibling(gw.pid(), SIGTERM);
    ExitStatus exit = gw.Wait();
    EXPECT_TRUE(exit.exited && exit.code == 1) << exit.Describe() << gw.Log();
    nlohmann::json record = gw.Record();
    EXPECT_EQ(record["class"], "unexpected") << record;
    EXPECT_TRUE(absl::StrContains(record["ignored_markers"].dump(), why))
        << "wanted '" << why << "' in " << record["ignored_markers"];
  }

  std::string root_;
  int started_ = 0;
};

TEST_F(HostileUserTest, DefaultStateDirIsClosedToOtherUsers) {
  auto gw = Start(root_ + "/state");
  ASSERT_TRUE(gw->WaitReady()) << gw->Log();
  struct stat st;
  ASSERT_EQ(stat(gw->state_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  const std::string dir = gw->state_dir();
  EXPECT_NE(AsNobody("echo '{}' > " + dir + "/planned-stop.json").status.code, 0);
  EXPECT_NE(AsNobody("ls " + dir).status.code, 0);
  EXPECT_NE(AsNobody("kill -TERM " + std::to_string(gw->pid())).status.code, 0);
  EXPECT_FALSE(Exists(dir + "/planned-stop.json"));
  ExpectSigtermStaysUnexpected(*gw, "");
}

// An admin later makes the running gateway's directory group-writable for
// nobody's group; each forged marker must still be ignored.
TEST_F(HostileUserTest, ForgedMarkersInAGroupWritableDirAreIgnored) {
  struct Attack {
    const char* name;
    const char* script;  // $DIR, $MARKER and $ROOT_MARKER are set
    const char* why;     // in the record's ignored_markers
  };
  const Attack attacks[] = {
      {"owned by nobody", "printf '%s' \"$MARKER\" > $DIR/planned-stop.json",
       "owned by uid 65534"},
      {"symlink to a root-owned marker", "ln -s $ROOT_MARKER $DIR/planned-stop.json",
       "symbolic link"},
      {"fifo", "mkfifo $DIR/planned-stop.json", "not a regular file"},
      {"root file left world-writable", "printf '%s' \"$MARKER\" > $DIR/planned-stop.json",
       "writable by group or others"},
  };
  for (const Attack& attack : attacks) {
    SCOPED_TRACE(attack.name);
    auto gw = Start(absl::StrCat(root_, "/state", started_));
    ASSERT_TRUE(gw->WaitReady()) << gw->Log();
    const std::string dir = gw->state_dir();
    std::string marker = ValidMarkerFor(*gw);
    std::string root_marker = root_ + "/root-marker.json";
    RunCommand({"/bin/sh", "-c", "umask 077; printf '%s' \"$0\" > " + root_marker, marker});
    if (absl::StrContains(attack.name, "world-writable")) {
      RunCommand({"/bin/sh", "-c", "printf x > " + dir + "/planned-stop.json; chmod 666 " + dir +
                                  "/planned-stop.json"});
    }
    ASSERT_EQ(chown(dir.c_str(), 0, kNobody), 0);
    ASSERT_EQ(chmod(dir.c_str(), 0770), 0);
    std::map<std::string, std::string> env = BaseEnvironment();
    env["DIR"] = dir;
    env["MARKER"] = marker;
    env["ROOT_MARKER"] = root_marker;
    RunResult forged = AsNobody(attack.script, env);
    ASSERT_EQ(forged.status.code, 0) << forged.err;
    ExpectSigtermStaysUnexpected(*gw, attack.why);
  }
}

TEST_F(HostileUserTest, HardLinkToARootMarkerIsRefusedByTheKernelOrIgnored) {
  auto gw = Start(root_ + "/state");
  ASSERT_TRUE(gw->WaitReady()) << gw->Log();
  const std::string dir = gw->state_dir();
  std::string root_marker = root_ + "/root-marker.json";
  RunCommand({"/bin/sh", "-c", "umask 077; printf '%s' \"$0\" > " + root_marker, ValidMarkerFor(*gw)});
  ASSERT_EQ(chown(dir.c_str(), 0, kNobody), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0770), 0);
  RunResult linked = AsNobody("ln " + root_marker + " " + dir + "/planned-stop.json");
  std::string protected_hardlinks = ReadText("/proc/sys/fs/protected_hardlinks");
  if (protected_hardlinks.rfind("1", 0) == 0) {
    EXPECT_NE(linked.status.code, 0) << "fs.protected_hardlinks=1 should refuse the link";
    ExpectSigtermStaysUnexpected(*gw, "");
  } else {
    ASSERT_EQ(linked.status.code, 0) << linked.err;
    ExpectSigtermStaysUnexpected(*gw, "hard links");
  }
}

TEST_F(HostileUserTest, GroupWritableOrForeignOrSymlinkedStateDirIsRefusedAtStartup) {
  std::string group_writable = root_ + "/group-writable";
  ASSERT_EQ(mkdir(group_writable.c_str(), 0700), 0);
  ASSERT_EQ(chown(group_writable.c_str(), 0, kNobody), 0);
  ASSERT_EQ(chmod(group_writable.c_str(), 0770), 0);
  // A sticky, world-writable parent, like /tmp: nobody plants things in it.
  std::string shared = root_ + "/shared";
  ASSERT_EQ(mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(chmod(shared.c_str(), 01777), 0);
  ASSERT_EQ(AsNobody("mkdir " + shared + "/planted && ln -s " + root_ + " " + shared +
                     "/link")
                .status.code,
            0);
  struct Case {
    std::string dir;
    std::string says;
  };
  for (const Case& c : {Case{group_writable, "writable by group or others"},
                        Case{shared + "/planted", "owned by uid 65534"},
                        Case{shared + "/link", "symbolic link"}}) {
    auto gw = Start(c.dir);
    ExitStatus exit = gw->Wait();
    EXPECT_TRUE(exit.exited && exit.code == 78) << c.dir << ": " << exit.Describe();
    EXPECT_TRUE(absl::StrContains(gw->Log(), c.says)) << gw->Log();
    EXPECT_FALSE(Exists(c.dir + "/running")) << "it wrote into a refused directory";
  }
}

// Not hostile, a fault: the state directory stops being writable while the
// gateway runs (a remount read-only, a chmod by an operator). Run as nobody
// because root writes through any mode bits.
TEST_F(HostileUserTest, StateDirThatBecomesUnwritableKeepsTheVerdictAndLogsTheRecord) {
  ASSERT_EQ(RunCommand({"/bin/cp", Runfile("gateway/gateway"), root_ + "/gateway"}).status.code, 0);
  std::string state = root_ + "/state";
  ASSERT_EQ(mkdir(state.c_str(), 0700), 0);
  ASSERT_EQ(chown(state.c_str(), kNobody, kNobody), 0);
  Gateway::Options options;
  options.state_dir = state;
  options.binary = root_ + "/gateway";
  options.uid = kNobody;
  Gateway gw(TestName(), options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  ASSERT_EQ(chmod(state.c_str(), 0500), 0);
  SignalFromSibling(gw.pid(), SIGTERM);  // a stray kill: unexpected
  ExitStatus exit = gw.Wait();
  EXPECT_TRUE(exit.exited && exit.code == 1) << exit.Describe() << gw.Log();
  EXPECT_FALSE(Exists(state + "/last-shutdown.json"));
  // The record is not lost: the log carries all of it.
  std::string log = gw.Log();
  size_t at = log.find("could not write the stop record: ");
  ASSERT_NE(at, std::string::npos) << log;
  std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_TRUE(absl::StrContains(line, "Permission denied")) << line;
  size_t json = line.find("; the record: ");
  ASSERT_NE(json, std::string::npos) << line;
  nlohmann::json record =
      nlohmann::json::parse(line.substr(json + strlen("; the record: ")), nullptr, false);
  ASSERT_TRUE(record.is_object()) << line;
  EXPECT_EQ(record["class"], "unexpected");
  EXPECT_EQ(record["pid"], gw.pid());
  EXPECT_EQ(record["exit_code"], 1);

  // Unwritable before start: one line, configuration error, nothing served.
  Gateway refused(TestName() + "-again", options);
  ExitStatus again = refused.Wait();
  EXPECT_TRUE(again.exited && again.code == 78) << again.Describe() << refused.Log();
  EXPECT_EQ(refused.Log(),
            absl::StrCat("gateway: error: state directory ", state, " is not writable by this user\n"));
}

// What a process running as nobody gets from the control socket: it
// connects and asks for a replacement. gatewayctl itself cannot be used:
// it refuses a state directory owned by another user before connecting.
enum class ControlAccess { kConnectRefused, kClosedWithoutAnswer, kAnswered };

ControlAccess TryControlSocketAsNobody(const std::string& path) {
  pid_t child = fork();
  if (child == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0) {
      ExitForkedChild(9);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) ExitForkedChild(8);
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ExitForkedChild(1);
    const char request[] = "{\"cmd\":\"replace\"}\n";
    // The gateway may already have closed it: no SIGPIPE, just read EOF.
    (void)!send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
    timeval timeout = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char reply[256];
    ExitForkedChild(read(fd, reply, sizeof reply) > 0 ? 0 : 2);
  }
  int raw = 0;
  waitpid(child, &raw, 0);
  int code = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  EXPECT_TRUE(code == 0 || code == 1 || code == 2) << "helper failed: " << raw;
  return code == 1 ? ControlAccess::kConnectRefused
                   : code == 2 ? ControlAccess::kClosedWithoutAnswer : ControlAccess::kAnswered;
}

TEST_F(HostileUserTest, ControlSocketRefusesOtherUsers) {
  // A short state directory path: sun_path holds 108 bytes.
  auto gw = Start(root_ + "/s");
  ASSERT_TRUE(gw->WaitReady()) << gw->Log();
  const std::string dir = gw->state_dir();
  const std::string socket_path = dir + "/control.sock";
  EXPECT_EQ(TryControlSocketAsNobody(socket_path), ControlAccess::kConnectRefused)
      << "the 0700 directory should stop it";
  // Traversable directory: the socket's own mode (0600) stops the connect.
  ASSERT_EQ(chmod(dir.c_str(), 0711), 0);
  EXPECT_EQ(TryControlSocketAsNobody(socket_path), ControlAccess::kConnectRefused);
  // Even with the socket opened to everyone, SO_PEERCRED refuses the peer.
  ASSERT_EQ(chmod(socket_path.c_str(), 0666), 0);
  EXPECT_EQ(TryControlSocketAsNobody(socket_path), ControlAccess::kClosedWithoutAnswer);
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(gw->Log(), "running as another user"); },
                      absl::Seconds(5)))
      << gw->Log();
  EXPECT_EQ(GatewayProcessesFor(dir).size(), 1u) << "a successor was started";
  EXPECT_TRUE(gw->child().Running());
  ExpectSigtermStaysUnexpected(*gw, "");
}

}  // namespace
}  // namespace gateway::testing
