// See harness.h.
#include "tests/harness/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gateway::testing {

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return absl::StrCat(srcdir, "/", workspace, "/", path);
  }
  return path;
}

std::string FreshTempDir(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(root != nullptr ? root : "/tmp", "/", name);
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
  mkdir(path.c_str(), 0700);
  return path;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string ExitStatus::Describe() const {
  if (timed_out) return "still running at the timeout";
  if (exited) return absl::StrCat("exited with ", code);
  return absl::StrCat("killed by signal ", signal);
}

std::map<std::string, std::string> BaseEnvironment() {
  std::map<std::string, std::string> env;
  env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  env["LANG"] = "C.UTF-8";
  // Under --config=asan/ubsan/tsan the children run with the same runtime
  // options as the test (halt on the first report, leak checks), so a
  // report in the gateway fails the test even when the gateway is later
  // killed rather than exiting.
  for (const char* name : {"ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) env[name] = value;
  }
  return env;
}

Child::Child(Options options) {
  // One shared directory, emptied once: children may be started from
  // several threads at once (gatewayctl stop and replace racing).
  static std::once_flag made;
  static std::string shared;
  std::call_once(made, [] { shared = FreshTempDir(absl::StrCat("child-", getpid())); });
  std::string dir = options.output_dir.empty() ? shared : options.output_dir;
  static std::atomic<int> counter{0};
  int n = ++counter;
  stdout_path_ = absl::StrCat(dir, "/stdout.", n);
  stderr_path_ = absl::StrCat(dir, "/stderr.", n);
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : options.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> argv;
  for (auto& arg : options.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    int out = open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) ExitForkedChild(126);
    if (options.uid && (setgroups(0, nullptr) != 0 || setresgid(*options.uid, *options.uid, *options.uid) != 0 ||
                        setresuid(*options.uid, *options.uid, *options.uid) != 0)) {
      ExitForkedChild(125);
    }
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, nullptr);
    execve(argv[0], argv.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ExitForkedChild(127);
  }
}

Child::~Child() {
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(5));
  }
}

bool Child::Running() {
  if (status_) return false;
  Wait(absl::ZeroDuration());
  return !status_;
}

ExitStatus Child::Wait(absl::Duration timeout) {
  if (status_) return *status_;
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int raw = 0;
    pid_t r = waitpid(pid_, &raw, WNOHANG);
    if (r == pid_) {
      ExitStatus status;
      status.exited = WIFEXITED(raw);
      status.code = status.exited ? WEXITSTATUS(raw) : -1;
      status.signal = WIFSIGNALED(raw) ? WTERMSIG(raw) : 0;
      status_ = status;
      return status;
    }
    if (absl::Now() >= deadline) {
      ExitStatus status;
      status.timed_out = true;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

void Child::Signal(int signo) { kill(pid_, signo); }

RunResult RunCommand(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
              absl::Duration timeout) {
  Child::Options options;
  options.argv = argv;
  options.env = env;
  Child child(options);
  RunResult result;
  result.status = child.Wait(timeout);
  result.out = child.Stdout();
  result.err = child.Stderr();
  return result;
}

void ExitForkedChild(int code) {
  syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

pid_t SignalFromSibling(pid_t pid, int signo) {
  pid_t sender = fork();
  if (sender == 0) {
    // Stay alive briefly so the gateway can read our name from /proc.
    int rc = kill(pid, signo);
    usleep(200 * 1000);
    ExitForkedChild(rc == 0 ? 0 : 1);
  }
  int raw = 0;
  waitpid(sender, &raw, 0);
  return sender;
}

PendingSender::PendingSender(pid_t target, int signo) {
  int fds[2];
  if (pipe(fds) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    close(fds[1]);
    char byte;
    if (read(fds[0], &byte, 1) == 1) {
      int rc = kill(target, signo);
      usleep(200 * 1000);  // stay readable in /proc while the gateway looks
      ExitForkedChild(rc == 0 ? 0 : 1);
    }
    ExitForkedChild(2);
  }
  close(fds[0]);
  trigger_fd_ = fds[1];
}

PendingSender::~PendingSender() {
  if (trigger_fd_ >= 0) close(trigger_fd_);
  if (pid_ > 0) {
    int raw;
    waitpid(pid_, &raw, 0);
  }
}

void PendingSender::Fire() {
  char byte = 'x';
  if (write(trigger_fd_, &byte, 1) != 1) return;
  int raw;
  waitpid(pid_, &raw, 0);
  pid_ = -1;
}

RunResult Gatewayctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {Runfile("tools/gatewayctl/gatewayctl")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

std::vector<pid_t> GatewayProcessesFor(const std::string& state_dir) {
  std::vector<pid_t> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  const std::string flag = "--state_dir=" + state_dir;
  while (dirent* entry = readdir(proc)) {  // bounded by the process table
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::string cmdline = ReadText(absl::StrCat("/proc/", pid, "/cmdline"));
    std::string stat = ReadText(absl::StrCat("/proc/", pid, "/stat"));
    size_t paren = stat.rfind(')');
    bool zombie = paren == std::string::npos || stat.compare(paren, 4, ") Z ") == 0;
    std::replace(cmdline.begin(), cmdline.end(), '\0', '\n');
    if (!zombie && cmdline.find("gateway/gateway\n") != std::string::npos &&
        cmdline.find(flag + "\n") != std::string::npos) {
      pids.push_back(pid);
    }
  }
  closedir(proc);
  return pids;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

Gateway::Gateway(const std::string& test_name, Options options) {
  std::string work = FreshTempDir("gw-" + test_name);
  state_dir_ = options.state_dir.empty() ? work + "/state" : options.state_dir;
  std::map<std::string, std::string> env = BaseEnvironment();
  if (options.notify) {
    // An abstract socket: test directories are too deep for sun_path.
    static int sockets = 0;
    notify_path_ = absl::StrCat("@gateway-test-", getpid(), "-", ++sockets);
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, notify_path_.data() + 1, notify_path_.size() - 1);
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_path_.size());
    if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      std::fprintf(stderr, "harness: bind notify socket: %s\n", std::strerror(errno));
    }
    env["NOTIFY_SOCKET"] = notify_path_;
  }
  for (const auto& [key, value] : options.extra_env) env[key] = value;
  Child::Options child;
  // An ephemeral admin port by default: tests run in parallel.
  std::string binary = options.binary[0] == '/' ? options.binary : Runfile(options.binary);
  child.argv = {binary, "--state_dir=" + state_dir_, "--admin=127.0.0.1:0"};
  // The same suite with another number of event loops (tests/BUILD.bazel's
  // *_workers1 / *_workers4 targets); a test's own --workers comes later
  // and wins.
  if (const char* workers = std::getenv("GATEWAY_TEST_WORKERS"); workers != nullptr) {
    child.argv.push_back(std::string("--workers=") + workers);
    static bool said = false;
    if (!said) std::printf("harness: gateways run with --workers=%s\n", workers);
    said = true;
  }
  for (const std::string& flag : options.flags) child.argv.push_back(flag);
  child.env = env;
  child.output_dir = work;
  child.uid = options.uid;
  child_ = std::make_unique<Child>(child);
}

std::vector<std::string> Gateway::Notifications() {
  char buffer[4096];
  for (;;) {
    ssize_t n = recv(notify_fd_, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    notifications_.emplace_back(buffer, static_cast<size_t>(n));
  }
  return notifications_;
}

bool Gateway::WaitReady(absl::Duration timeout) {
  return WaitFor(
      [&] {
        for (const std::string& n : Notifications()) {
          if (n.find("READY=1") != std::string::npos) return true;
        }
        return !child_->Running();
      },
      timeout) &&
         child_->Running();
}

std::string Gateway::AdminAddress() const {
  nlohmann::json j = nlohmann::json::parse(ReadText(state_dir_ + "/instance.json"), nullptr, false);
  return j.is_object() && j.contains("admin") && j["admin"].is_string() ? j["admin"].get<std::string>()
                                                                        : std::string();
}

nlohmann::json Gateway::Record() const {
  return nlohmann::json::parse(ReadText(state_dir_ + "/last-shutdown.json"), nullptr, false);
}

}  // namespace gateway::testing
