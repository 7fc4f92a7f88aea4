// Loading, checking and isolating runtime detector plugins; see
// plugin_loader.h and the ABI in plugin_abi.h.
#include "gateway/plugins/plugin_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/flags.h"
#include "gateway/plugins/plugin_abi.h"
#include "gateway/plugins/plugin_boundary.h"
#include "gateway/base/proc.h"
#include "gateway/base/sys.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"

DEFINE_string(detector_plugin, "",
              "Path of a detector plugin: a shared library with the C ABI of "
              "gateway/plugins/plugin_abi.h, loaded at start-up; repeat the flag or separate paths "
              "with commas. Name the plugins in --detectors to use them");
static gateway::RepeatableFlag detector_plugin_is_repeatable("detector_plugin");
DEFINE_string(detector_plugin_timeout, "2s",
              "How long one plugin detect() call may run; a plugin that takes longer is "
              "killed and has no opinion");

namespace gateway {
namespace {

constexpr size_t kMaxNameLength = 64;

struct LoadedPlugin {
  std::string path;
  std::string name;
  gateway_detect_fn detect = nullptr;
  PluginOptions options;

  std::string Describe() const { return absl::StrCat("detector plugin '", name, "' (", path, ")"); }
};

// In the forked child: run detect() and send the answer. Never returns.
[[noreturn]] void AnswerInChild(const LoadedPlugin& plugin, const gateway_stop_context& view,
                                int answer_fd) {
  // A crash must kill the child with its signal, not run the gateway's
  // failure handler (a stack dump in the gateway's log).
  for (int signo : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP}) {
    signal(signo, SIG_DFL);
  }
  DetectAnswer answer;
  // Not NUL: evidence the plugin leaves unterminated is then detected.
  std::memset(answer.evidence, '?', sizeof answer.evidence);
  answer.stop_class = plugin.detect(&view, answer.evidence, sizeof answer.evidence);
  ssize_t written = write(answer_fd, &answer, sizeof answer);
  _exit(written == static_cast<ssize_t>(sizeof answer) ? 0 : 1);
}

// Runs detect() in a forked child with the plugin's timeout.
absl::StatusOr<DetectAnswer> CallDetectIsolated(const LoadedPlugin& plugin,
                                                const gateway_stop_context& view) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2 for a plugin call");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  pid_t child = fork();
  if (child < 0) return ErrnoStatus(errno, "fork for a plugin call");
  if (child == 0) AnswerInChild(plugin, view, write_end.get());
  write_end.Reset();

  DetectAnswer answer;
  size_t received = 0;
  bool timed_out = false;
  const absl::Time deadline = absl::Now() + plugin.options.detect_timeout;
  while (received < sizeof answer) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    pollfd ready = {read_end.get(), POLLIN, 0};
    int polled = left_ms > 0 ? poll(&ready, 1, static_cast<int>(left_ms)) : 0;
    if (polled < 0 && errno == EINTR) continue;
    if (polled == 0) timed_out = true;
    if (polled <= 0) break;
    ssize_t n = RetryOnEintr([&] {
      return read(read_end.get(), reinterpret_cast<char*>(&answer) + received,
                  sizeof answer - received);
    });
    if (n <= 0) break;  // EOF: the child died or exited without answering
    received += static_cast<size_t>(n);
  }
  if (timed_out) kill(child, SIGKILL);
  int status = 0;
  pid_t reaped = RetryOnEintr([&] { return waitpid(child, &status, 0); });
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "detect() did not answer within ", absl::FormatDuration(plugin.options.detect_timeout),
        " and was killed"));
  }
  if (reaped == child && WIFSIGNALED(status)) {
    return absl::InternalError(
        absl::StrCat("detect() crashed with ", SignalName(WTERMSIG(status))));
  }
  if (received < sizeof answer) {
    return absl::InternalError(absl::StrCat(
        "detect() ended its process without answering",
        reaped == child && WIFEXITED(status) ? absl::StrCat(" (exit status ", WEXITSTATUS(status), ")")
                                             : std::string()));
  }
  return answer;
}

absl::StatusOr<std::optional<Verdict>> AskPlugin(const LoadedPlugin& plugin,
                                                 const StopContext& ctx, bool dry_run) {
  gateway_stop_context view = CViewOf(ctx, dry_run);
  absl::StatusOr<DetectAnswer> answer = CallDetectIsolated(plugin, view);
  if (!answer.ok()) return answer.status();
  return VerdictFromAnswer(*answer);
}

class PluginDetector : public StopReasonDetector {
 public:
  explicit PluginDetector(std::shared_ptr<const LoadedPlugin> plugin)
      : plugin_(std::move(plugin)) {}

  absl::string_view name() const override { return plugin_->name; }

  std::optional<Verdict> Detect(const StopContext& ctx) override {
    absl::StatusOr<std::optional<Verdict>> verdict =
        AskPlugin(*plugin_, ctx, plugin_->options.dry_run);
    if (!verdict.ok()) {
      std::string warning =
          absl::StrCat(plugin_->Describe(), " has no opinion: ", verdict.status().message());
      LOG(WARNING) << warning;
      if (ctx.warnings != nullptr) ctx.warnings->push_back(std::move(warning));
      return std::nullopt;
    }
    return *verdict;
  }

 private:
  std::shared_ptr<const LoadedPlugin> plugin_;
};

// The start-up probe: this process, no signal (signo 0), dry run.
StopContext ProbeContext() {
  StopContext ctx;
  absl::StatusOr<ProcessIdentity> self = ReadProcessIdentity(getpid());
  ctx.self = self.ok() ? *self : ProcessIdentity{getpid(), 0, ""};
  ctx.self_uid = geteuid();
  ctx.parent = ReadProcessInfo(getppid());
  ctx.parent.pid = getppid();
  ctx.environment = CurrentEnvironment();
  ctx.now = absl::Now();
  ctx.phase = Phase::kStarting;
  return ctx;
}

// dlopen, entry symbol, descriptor checks, then the probe.
absl::StatusOr<std::shared_ptr<const LoadedPlugin>> LoadPlugin(const std::string& path,
                                                               const PluginOptions& options) {
  const std::string where = absl::StrCat("detector plugin ", path);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat(where, ": ", std::strerror(errno), " (check --detector_plugin)"));
  }
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError(where + " is not a regular file");
  // Never dlclose'd: detectors made from it live until the process exits.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(where, " cannot be loaded: ", dlerror()));
  }
  auto entry = reinterpret_cast<gateway_detector_plugin_entry_fn>(
      dlsym(handle, GATEWAY_DETECTOR_PLUGIN_ENTRY));
  if (entry == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " does not export ", GATEWAY_DETECTOR_PLUGIN_ENTRY,
        "(): it is not a detector plugin, or was not built against gateway/plugins/plugin_abi.h "
        "(declare the entry point extern \"C\")"));
  }
  const gateway_detector_plugin* descriptor = entry();
  if (descriptor == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", GATEWAY_DETECTOR_PLUGIN_ENTRY, "() returned NULL"));
  }
  if (descriptor->abi_version != GATEWAY_DETECTOR_PLUGIN_ABI_VERSION) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, " has plugin ABI version ", descriptor->abi_version,
        " but this gateway supports version ", GATEWAY_DETECTOR_PLUGIN_ABI_VERSION,
        ": rebuild it against this gateway's gateway/plugins/plugin_abi.h"));
  }
  if (descriptor->name == nullptr || descriptor->detect == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "'s descriptor has no ", descriptor->name == nullptr ? "name" : "detect function"));
  }
  size_t name_length = strnlen(descriptor->name, kMaxNameLength + 1);
  if (name_length > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " has a name longer than ", kMaxNameLength, " characters"));
  }
  auto plugin = std::make_shared<LoadedPlugin>();
  plugin->path = path;
  plugin->name.assign(descriptor->name, name_length);
  plugin->detect = descriptor->detect;
  plugin->options = options;
  // The registry checks the name itself (Build()); the probe checks that
  // detect() runs and answers sensibly before any real stop depends on it.
  StopContext probe = ProbeContext();
  absl::StatusOr<std::optional<Verdict>> answer = AskPlugin(*plugin, probe, /*dry_run=*/true);
  if (!answer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        plugin->Describe(), " failed its start-up probe: ", answer.status().message()));
  }
  return std::shared_ptr<const LoadedPlugin>(std::move(plugin));
}

}  // namespace

std::vector<std::string> DetectorPluginPathsFromFlags() {
  std::vector<std::string> paths;
  for (const std::string& path : SplitDetectorList(FLAGS_detector_plugin)) {
    if (!path.empty()) paths.push_back(std::filesystem::absolute(path).string());
  }
  return paths;
}

absl::StatusOr<absl::Duration> ParsePluginTimeout(const std::string& text) {
  absl::StatusOr<absl::Duration> timeout = ParseDurationFlag("detector_plugin_timeout", text);
  if (!timeout.ok()) return timeout.status();
  if (*timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--detector_plugin_timeout must be positive");
  }
  return *timeout;
}

absl::StatusOr<PluginOptions> PluginOptionsFromFlags() {
  absl::StatusOr<absl::Duration> timeout = ParsePluginTimeout(FLAGS_detector_plugin_timeout);
  if (!timeout.ok()) return timeout.status();
  PluginOptions options;
  options.detect_timeout = *timeout;
  return options;
}

absl::Status AddRuntimePlugins(DetectorRegistry::Builder* builder) {
  absl::StatusOr<PluginOptions> options = PluginOptionsFromFlags();
  if (!options.ok()) return options.status();
  return AddRuntimePlugins(DetectorPluginPathsFromFlags(), *options, builder);
}

absl::Status AddRuntimePlugins(const std::vector<std::string>& paths,
                               const PluginOptions& options,
                               DetectorRegistry::Builder* builder) {
  for (const std::string& path : paths) {
    absl::StatusOr<std::shared_ptr<const LoadedPlugin>> plugin = LoadPlugin(path, options);
    if (!plugin.ok()) return plugin.status();
    std::shared_ptr<const LoadedPlugin> loaded = *plugin;
    builder->Add({loaded->name,
                  [loaded] { return std::make_unique<PluginDetector>(loaded); },
                  loaded->path});
  }
  return absl::OkStatus();
}

}  // namespace gateway
