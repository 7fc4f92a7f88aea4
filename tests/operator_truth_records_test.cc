// Black-box: what the gateway and gatewayctl tell an operator about past
// stops when the facts are hostile (issue 13): a signal sender whose name
// is not UTF-8, non-UTF-8 command-line values, a previous run that was
// SIGKILLed, a state directory whose filesystem is full at the stop, a
// torn history line, and `gatewayctl history` over all of it.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

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

// Sends `signo` to `target` from a forked process that first renames
// itself to `comm` (prctl(PR_SET_NAME), cut by the kernel at 15 bytes).
void SignalFromProcessNamed(const std::string& comm, pid_t target, int signo) {
  pid_t sender = fork();
  if (sender == 0) {
    prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
    int rc = kill(target, signo);
    usleep(300 * 1000);  // stay readable in /proc while the gateway looks
    ExitForkedChild(rc == 0 ? 0 : 1);
  }
  int raw = 0;
  waitpid(sender, &raw, 0);
}

// Every line of a history file parses as a JSON object, and the file ends
// with a newline (or is empty).
void ExpectWholeLines(const std::string& path) {
  std::string text = ReadText(path);
  if (text.empty()) return;
  EXPECT_EQ(text.back(), '\n') << path << ":\n" << text;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(ParseJson(line).is_object()) << path << ": torn line: " << line;
  }
}

// The entries of `gatewayctl history --json`.
nlohmann::json HistoryEntries(const std::string& state_dir) {
  RunResult history = Gatewayctl({"history", "--json", "--state_dir=" + state_dir});
  EXPECT_EQ(history.status.code, 0) << history.err;
  nlohmann::json j = ParseJson(history.out);
  EXPECT_TRUE(j.is_object() && j["entries"].is_array()) << history.out << history.err;
  return j.is_object() && j["entries"].is_array() ? j["entries"] : nlohmann::json::array();
}

TEST(OperatorTruthRecordsTest, SenderWithANonUtf8NameGetsAValidRecord) {
  struct Case {
    std::string comm;      // what the sender calls itself
    std::string recorded;  // what the record says: invalid bytes as \xNN
  };
  // "шлюзшлюзшлюз" is 24 bytes; the kernel keeps 15, the last one the first
  // byte of a two-byte character.
  const Case cases[] = {
      {"\xff\xfe-sender", "\\xff\\xfe-sender"},
      {"шлюзшлюзшлюз", "шлюзшлю\\xd0"},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.recorded);
    Gateway gw(absl::StrCat(TestName(), ++n));
    ASSERT_TRUE(gw.WaitReady()) << gw.Log();
    SignalFromProcessNamed(c.comm, gw.pid(), SIGTERM);
    ExitStatus status = gw.Wait();
    EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << gw.Log();
    nlohmann::json record = gw.Record();
    ASSERT_TRUE(record.is_object()) << ReadText(gw.state_dir() + "/last-shutdown.json") << gw.Log();
    EXPECT_EQ(record["class"], "unexpected");
    EXPECT_EQ(record["sender"]["comm"], c.recorded);
    EXPECT_TRUE(absl::StrContains(record["evidence"].get<std::string>(), c.recorded)) << record;
    EXPECT_FALSE(Exists(gw.state_dir() + "/running")) << "the stop did not finish";
    ExpectWholeLines(gw.state_dir() + "/stop-history.jsonl");
    EXPECT_TRUE(absl::StrContains(gw.Log(), "(" + c.recorded + ", uid ")) << gw.Log();
  }
}

TEST(OperatorTruthRecordsTest, NonUtf8CommandLineValuesAreRefusedWithOneLine) {
  std::string base = FreshTempDir("non-utf8-flags");
  Gateway::Options options;
  options.state_dir = base + "/state\xff";
  options.notify = false;
  Gateway gw(TestName(), options);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 78) << status.Describe() << gw.Log();
  EXPECT_EQ(gw.Log(), absl::StrCat("gateway: error: flag --state_dir: '", base,
                                   "/state\\xff' is not valid UTF-8 (invalid bytes shown as "
                                   "\\xNN); command-line values must be UTF-8\n"));
  EXPECT_FALSE(Exists(base + "/state\xff"));

  // gatewayctl: a usage error (2), one line; with --json also valid JSON.
  Gateway running(TestName() + "-running");
  ASSERT_TRUE(running.WaitReady()) << running.Log();
  RunResult mark = Gatewayctl(
      {"mark-planned", "--json", "--state_dir=" + running.state_dir(), "--reason=\xff"});
  EXPECT_EQ(mark.status.code, 2) << mark.status.Describe() << mark.err;
  EXPECT_EQ(mark.err,
            "gatewayctl: flag --reason: '\\xff' is not valid UTF-8 (invalid bytes shown as \\xNN); "
            "command-line values must be UTF-8\n");
  EXPECT_TRUE(ParseJson(mark.out).contains("error")) << mark.out;
  EXPECT_FALSE(Exists(running.state_dir() + "/planned-stop.json"));
  RunResult status_cmd = Gatewayctl({"status", "--json", "--state_dir=" + base + "/st\xc3"});
  EXPECT_EQ(status_cmd.status.code, 2) << status_cmd.err;
  EXPECT_TRUE(ParseJson(status_cmd.out).contains("error")) << status_cmd.out;

  // A state directory from the environment cannot be refused as a flag:
  // the state directory check says it.
  std::map<std::string, std::string> env = BaseEnvironment();
  env["STATE_DIRECTORY"] = base + "/env\xfe";
  RunResult by_env = RunCommand({Runfile("gateway/gateway"), "--admin="}, env);
  EXPECT_EQ(by_env.status.code, 78) << by_env.status.Describe() << by_env.err;
  EXPECT_EQ(by_env.err, absl::StrCat("gateway: error: state directory '", base,
                                     "/env\\xfe' is not valid UTF-8 (invalid bytes shown as "
                                     "\\xNN); records and replies name it: use a UTF-8 path\n"));
  SignalFromSibling(running.pid(), SIGTERM);
  EXPECT_EQ(running.Wait().code, 1);
}

TEST(OperatorTruthRecordsTest, StatusShowsAnUncleanPreviousExitFromTheStart) {
  std::string state_dir = FreshTempDir("unclean-status") + "/state";
  Gateway::Options options;
  options.state_dir = state_dir;
  pid_t killed_pid;
  {
    Gateway first(TestName() + "-1", options);
    ASSERT_TRUE(first.WaitReady()) << first.Log();
    killed_pid = first.pid();
    first.child().Signal(SIGKILL);
    ASSERT_EQ(first.Wait().signal, SIGKILL);
  }
  const std::string unclean_line =
      absl::StrCat("(pid ", killed_pid, ") did not exit cleanly");
  // Nothing runs: status already says how the last run ended.
  RunResult down = Gatewayctl({"status", "--state_dir=" + state_dir});
  EXPECT_EQ(down.status.code, 3) << down.err;
  EXPECT_TRUE(absl::StrContains(down.out, "last run " + unclean_line)) << down.out;

  Gateway second(TestName() + "-2", options);
  ASSERT_TRUE(second.WaitReady()) << second.Log();
  RunResult text = Gatewayctl({"status", "--state_dir=" + state_dir});
  EXPECT_EQ(text.status.code, 0) << text.err;
  EXPECT_TRUE(absl::StrContains(text.out, "previous run " + unclean_line)) << text.out;
  EXPECT_FALSE(absl::StrContains(text.out, "none recorded")) << text.out;
  RunResult json = Gatewayctl({"status", "--json", "--state_dir=" + state_dir});
  nlohmann::json j = ParseJson(json.out);
  ASSERT_TRUE(j.is_object()) << json.out;
  EXPECT_EQ(j["last_shutdown"], nullptr) << "kept as last-shutdown.json is";
  nlohmann::json previous = j["previous_run"];
  EXPECT_EQ(previous["exit"], "unclean") << j;
  EXPECT_EQ(previous["pid"], killed_pid) << j;
  EXPECT_TRUE(previous["started_at"].is_string()) << j;
  EXPECT_TRUE(previous["start_time"].is_number_unsigned()) << j;
  SignalFromSibling(second.pid(), SIGTERM);
  EXPECT_EQ(second.Wait().code, 1);
}

// A small tmpfs mounted for one test and unmounted (lazily) at the end.
class SmallTmpfs {
 public:
  SmallTmpfs() {
    char path[] = "/tmp/gw-full-XXXXXX";
    if (mkdtemp(path) == nullptr) return;
    path_ = path;
    mounted_ = RunCommand({"/bin/mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", path_})
                   .status.code == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) RunCommand({"/bin/umount", "-l", path_});
    if (!path_.empty()) rmdir(path_.c_str());
  }
  bool mounted() const { return mounted_; }
  const std::string& path() const { return path_; }
  // Writes zeros to a file until the filesystem is full; bounded.
  bool Fill() {
    int fd = open((path_ + "/fill").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    char block[1024] = {};
    bool full = false;
    for (int i = 0; i < 4096 && !full; ++i) {
      full = write(fd, block, sizeof block) < 0 && errno == ENOSPC;
    }
    close(fd);
    return full;
  }
  void Free() { unlink((path_ + "/fill").c_str()); }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST(OperatorTruthRecordsTest, FullStateDirAtTheStopIsReportedAsAnUnwrittenRecord) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  SmallTmpfs fs;
  ASSERT_TRUE(fs.mounted()) << "mount -t tmpfs failed";
  std::string state_dir = fs.path() + "/state";
  Gateway::Options options;
  options.state_dir = state_dir;
  pid_t first_pid;
  {
    Gateway first(TestName() + "-1", options);
    ASSERT_TRUE(first.WaitReady()) << first.Log();
    first_pid = first.pid();
    ASSERT_TRUE(fs.Fill());
    SignalFromSibling(first.pid(), SIGTERM);  // a stray kill: unexpected
    ExitStatus status = first.Wait();
    EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << first.Log();
    EXPECT_FALSE(Exists(state_dir + "/last-shutdown.json"));
    // The verdict still reaches the log, whole.
    EXPECT_TRUE(absl::StrContains(first.Log(), "stop classified as unexpected")) << first.Log();
    EXPECT_TRUE(absl::StrContains(first.Log(), "could not write the stop record: ")) << first.Log();
    ExpectWholeLines(state_dir + "/stop-history.jsonl");
    // The sentinel stays, and says what happened.
    nlohmann::json sentinel = ParseJson(ReadText(state_dir + "/running"));
    ASSERT_TRUE(sentinel.is_object()) << ReadText(state_dir + "/running");
    EXPECT_EQ(sentinel["pid"], first_pid);
    EXPECT_EQ(sentinel["stopping"], true) << sentinel;
    EXPECT_EQ(sentinel["class"], "unexpected") << sentinel;
    EXPECT_TRUE(absl::StrContains(sentinel.value("record_error", ""), "No space left on device"))
        << sentinel;
  }
  const std::string truth = absl::StrCat("(pid ", first_pid,
                                         ") stopped, its record could not be written: ");
  // Before anything restarts it, status says so.
  RunResult down = Gatewayctl({"status", "--state_dir=" + state_dir});
  EXPECT_TRUE(absl::StrContains(down.out, "last run " + truth)) << down.out;

  fs.Free();
  Gateway second(TestName() + "-2", options);
  ASSERT_TRUE(second.WaitReady()) << second.Log();
  size_t at = second.Log().find("previous run " + truth);
  ASSERT_NE(at, std::string::npos) << second.Log();
  std::string line = second.Log().substr(at, second.Log().find('\n', at) - at);
  EXPECT_TRUE(absl::StrContains(line, "No space left on device; class as logged: unexpected"))
      << line;
  EXPECT_FALSE(absl::StrContains(second.Log(), "stopped cleanly")) << second.Log();

  RunResult text = Gatewayctl({"status", "--state_dir=" + state_dir});
  EXPECT_TRUE(absl::StrContains(text.out, "previous run " + truth)) << text.out;
  EXPECT_TRUE(absl::StrContains(text.out, "class as logged: unexpected")) << text.out;
  nlohmann::json j = ParseJson(Gatewayctl({"status", "--json", "--state_dir=" + state_dir}).out);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["previous_run"]["exit"], "unrecorded") << j;
  EXPECT_EQ(j["previous_run"]["pid"], first_pid) << j;
  EXPECT_EQ(j["previous_run"]["class"], "unexpected") << j;
  EXPECT_TRUE(absl::StrContains(j["previous_run"].value("record_error", ""),
                                "No space left on device"))
      << j;

  // The history has a row for it.
  nlohmann::json entries = HistoryEntries(state_dir);
  ASSERT_EQ(entries.size(), 1u) << entries;
  EXPECT_EQ(entries[0]["kind"], "unrecorded_stop") << entries;
  EXPECT_EQ(entries[0]["pid"], first_pid) << entries;
  EXPECT_EQ(entries[0]["class"], "unexpected") << entries;

  SignalFromSibling(second.pid(), SIGTERM);
  EXPECT_EQ(second.Wait().code, 1);
  EXPECT_EQ(second.Record()["previous_exit"], "unrecorded");
  EXPECT_FALSE(Exists(state_dir + "/running"));
}

TEST(OperatorTruthRecordsTest, HistoryLineAfterATornTailIsWholeAndTheTornOneIsSkipped) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  const std::string history = gw.state_dir() + "/stop-history.jsonl";
  // What a write cut short by a full disk or a crash leaves: no newline.
  {
    int fd = open(history.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const char torn[] = "{\"version\":1,\"class\":\"planned\",\"pid\":12";
    ASSERT_EQ(write(fd, torn, sizeof torn - 1), static_cast<ssize_t>(sizeof torn - 1));
    close(fd);
  }
  SignalFromSibling(gw.pid(), SIGTERM);
  ASSERT_EQ(gw.Wait().code, 1);
  std::string text = ReadText(history);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::string last = text.substr(0, text.size() - 1);
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  nlohmann::json record = ParseJson(last);
  ASSERT_TRUE(record.is_object()) << "glued to the torn tail: " << text;
  EXPECT_EQ(record["pid"], gw.pid());
  nlohmann::json entries = HistoryEntries(gw.state_dir());
  ASSERT_EQ(entries.size(), 1u) << entries;
  EXPECT_EQ(entries[0]["pid"], gw.pid());
}

TEST(OperatorTruthRecordsTest, HistoryListsStopsAndUncleanExitsOldestFirst) {
  std::string state_dir = FreshTempDir("history") + "/state";
  Gateway::Options options;
  options.state_dir = state_dir;
  std::vector<pid_t> pids;
  {
    Gateway planned(TestName() + "-1", options);
    ASSERT_TRUE(planned.WaitReady()) << planned.Log();
    pids.push_back(planned.pid());
    ASSERT_EQ(Gatewayctl({"stop", "--state_dir=" + state_dir}).status.code, 0);
    ASSERT_EQ(planned.Wait().code, 0);
  }
  {
    Gateway killed(TestName() + "-2", options);
    ASSERT_TRUE(killed.WaitReady()) << killed.Log();
    pids.push_back(killed.pid());
    killed.child().Signal(SIGKILL);
    ASSERT_EQ(killed.Wait().signal, SIGKILL);
  }
  // Before the next start, the unclean exit is listed as not yet reported.
  nlohmann::json before = HistoryEntries(state_dir);
  ASSERT_EQ(before.size(), 2u) << before;
  EXPECT_EQ(before[1]["kind"], "unclean_exit");
  EXPECT_EQ(before[1]["reported_by"], nullptr);
  // The history rotates to .1; both files are read.
  ASSERT_EQ(rename((state_dir + "/stop-history.jsonl").c_str(),
                   (state_dir + "/stop-history.jsonl.1").c_str()),
            0);
  {
    Gateway stray(TestName() + "-3", options);
    ASSERT_TRUE(stray.WaitReady()) << stray.Log();
    pids.push_back(stray.pid());
    SignalFromSibling(stray.pid(), SIGTERM);
    ASSERT_EQ(stray.Wait().code, 1);
  }
  nlohmann::json entries = HistoryEntries(state_dir);
  ASSERT_EQ(entries.size(), 3u) << entries;
  EXPECT_EQ(entries[0]["pid"], pids[0]);
  EXPECT_EQ(entries[0]["class"], "planned");
  EXPECT_EQ(entries[0]["detector"], "planned_stop_file");
  EXPECT_EQ(entries[1]["pid"], pids[1]);
  EXPECT_EQ(entries[1]["kind"], "unclean_exit");
  EXPECT_EQ(entries[1]["reported_by"], pids[2]);
  EXPECT_EQ(entries[2]["pid"], pids[2]);
  EXPECT_EQ(entries[2]["class"], "unexpected");
  EXPECT_EQ(entries[2]["exit_code"], 1);

  RunResult table = Gatewayctl({"history", "--state_dir=" + state_dir});
  EXPECT_EQ(table.status.code, 0) << table.err;
  std::istringstream lines(table.out);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(line);
  ASSERT_EQ(rows.size(), 4u) << table.out;
  EXPECT_TRUE(absl::StartsWith(rows[0], "TIME")) << table.out;
  EXPECT_TRUE(absl::StrContains(rows[1], absl::StrCat(" ", pids[0], " ")) &&
              absl::StrContains(rows[1], "planned") &&
              absl::StrContains(rows[1], "planned_stop_file"))
      << table.out;
  EXPECT_TRUE(absl::StrContains(rows[2], absl::StrCat(" ", pids[1], " ")) &&
              absl::StrContains(rows[2], "unclean"))
      << table.out;
  EXPECT_TRUE(absl::StrContains(rows[3], absl::StrCat(" ", pids[2], " ")) &&
              absl::StrContains(rows[3], "unexpected"))
      << table.out;

  // --since: a duration back from now, or a time.
  EXPECT_EQ(ParseJson(Gatewayctl({"history", "--json", "--since=1h", "--state_dir=" + state_dir}).out)
                ["entries"].size(),
            3u);
  EXPECT_EQ(ParseJson(Gatewayctl({"history", "--json", "--since=2999-01-01T00:00:00Z",
                                  "--state_dir=" + state_dir})
                          .out)["entries"]
                .size(),
            0u);
  EXPECT_EQ(Gatewayctl({"history", "--since=yesterday", "--state_dir=" + state_dir}).status.code, 2);
}

}  // namespace
}  // namespace gateway::testing
