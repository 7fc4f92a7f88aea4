// The gateway binary: start-up, serving and the stop sequence, in order.
// Shutdown signals are blocked before anything else so that no thread can
// ever take one with a default action or a crash handler; the stop
// controller's thread reads them and the detector chain classifies the
// first. The exit status is the exit policy's answer for that class.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gateway/detector_registry.h"
#include "gateway/exit_policy.h"
#include "gateway/flags.h"
#include "gateway/instance.h"
#include "gateway/json_util.h"
#include "gateway/sd_notify.h"
#include "gateway/signals.h"
#include "gateway/state_dir.h"
#include "gateway/stop_controller.h"
#include "gateway/stop_record.h"
#include "gateway/termination_log.h"
#include "gateway/watchdog.h"
#include "gflags/gflags.h"
#include "glog/logging.h"

DEFINE_string(state_dir, "",
              "State directory (pid lock, markers, records). Default: $STATE_DIRECTORY, "
              "$RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR/gateway, /run/gateway (root) or "
              "~/.local/state/gateway");
DEFINE_string(detectors, "",
              "Comma-separated detector chain, first verdict wins. Default: "
              "takeover_marker,planned_stop_file,systemd,container_pid1,supervisor,interactive");
DEFINE_bool(list_detectors, false, "Print the detectors compiled in and exit");
DEFINE_string(exit_codes, "",
              "Exit status per stop class, e.g. unexpected=1,planned=0 (default "
              "takeover=0,planned=0,unexpected=1)");
DEFINE_string(marker_ttl, "60s", "How long a takeover or planned-stop marker stays valid");
DEFINE_string(startup_delay_for_test, "0s",
              "Test only: stay in the starting phase this long before serving");

namespace gateway {
namespace {

constexpr char kUsage[] =
    "gateway: a layer-4 TCP gateway that knows why it is stopped.\n"
    "Usage: gateway [flags]\n"
    "Exit status: 0 planned or takeover stop, 1 unexpected stop, 75 temporary start-up\n"
    "failure (instance lock held), 78 configuration error.";

[[noreturn]] void Exit(int code) {
  google::FlushLogFiles(google::GLOG_INFO);
  std::fflush(stdout);
  std::fflush(stderr);
  // _exit: other threads are still running; static destructors must not race them.
  _exit(code);
}

// One line, the documented status, no stack trace.
[[noreturn]] void ExitWithError(int code, absl::string_view message) {
  std::fprintf(stderr, "gateway: error: %.*s\n", static_cast<int>(message.size()),
               message.data());
  Exit(code);
}

template <typename T>
T ValueOrExit(absl::StatusOr<T> value, int code) {
  if (!value.ok()) ExitWithError(code, value.status().message());
  return *std::move(value);
}

void ListDetectors(const DetectorRegistry& registry) {
  const std::vector<std::string>& order = DefaultDetectorOrder();
  for (const std::string& name : registry.Names()) {
    auto it = std::find(order.begin(), order.end(), name);
    std::string position =
        it == order.end() ? "-" : absl::StrCat(it - order.begin() + 1);
    std::printf("%s\t%s\t%s\n", name.c_str(), registry.Find(name)->origin.c_str(),
                position.c_str());
  }
}

void WriteRecord(const StateDirectory& dir, const StopRecord& record) {
  std::string json = StopRecordToJson(record).dump(2) + "\n";
  absl::Status written = dir.WriteAtomically(kLastShutdownFile, json, 0644);
  if (!written.ok()) {
    LOG(ERROR) << "could not write the stop record: " << written.message();
  } else {
    LOG(INFO) << "stop record written to " << dir.PathOf(kLastShutdownFile);
  }
}

}  // namespace

int Main(int argc, char** argv) {
  // Before anything that could start a thread (see signals.h).
  BlockHandledSignals();
  const absl::Time started_at = absl::Now();
  const Environment environment = CurrentEnvironment();

  gflags::SetUsageMessage(kUsage);
  absl::StatusOr<ParsedCommandLine> command_line = ParseCommandLine(argc, argv);
  if (!command_line.ok()) ExitWithError(kExitConfigError, command_line.status().message());
  if (command_line->help) {
    PrintUsage(kUsage, {"gateway/"});
    Exit(0);
  }
  if (!command_line->positional.empty()) {
    ExitWithError(kExitConfigError, absl::StrCat("unexpected argument '",
                                                 command_line->positional[0], "' (see --help)"));
  }
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  google::InstallFailureSignalHandler();

  DetectorRegistry registry = ValueOrExit(
      DetectorRegistry::Builder::FromStaticRegistrations().Build(), kExitConfigError);
  if (FLAGS_list_detectors) {
    ListDetectors(registry);
    Exit(0);
  }
  std::vector<std::string> chain_names =
      FLAGS_detectors.empty() ? DefaultDetectorOrder() : SplitDetectorList(FLAGS_detectors);
  DetectorChain chain = ValueOrExit(registry.MakeChain(chain_names), kExitConfigError);
  ExitPolicy exit_policy = ValueOrExit(ExitPolicy::Parse(FLAGS_exit_codes), kExitConfigError);
  absl::Duration marker_ttl =
      ValueOrExit(ParseDurationFlag("marker_ttl", FLAGS_marker_ttl), kExitConfigError);
  absl::Duration startup_delay = ValueOrExit(
      ParseDurationFlag("startup_delay_for_test", FLAGS_startup_delay_for_test),
      kExitConfigError);

  std::string state_path = FLAGS_state_dir.empty()
                               ? DefaultStateDirPath(environment, geteuid())
                               : FLAGS_state_dir;
  StateDirectory state_dir =
      ValueOrExit(StateDirectory::OpenOrCreate(state_path), kExitConfigError);
  InstanceLock lock = ValueOrExit(InstanceLock::Acquire(state_dir), kExitTemporary);

  SelfEvidence self;
  self.identity = ValueOrExit(ReadProcessIdentity(getpid()), kExitConfigError);
  self.uid = geteuid();
  self.ppid = getppid();
  self.environment = environment;

  PreviousRun previous = InspectPreviousRun(state_dir);
  if (previous.exit == "unclean") {
    LOG(WARNING) << "previous run"
                 << (previous.pid ? absl::StrCat(" (pid ", *previous.pid, ")") : std::string())
                 << " did not exit cleanly: it left its running sentinel and no stop record "
                    "(SIGKILL, OOM kill or crash)";
  } else if (previous.exit == "clean") {
    LOG(INFO) << "previous run"
              << (previous.pid ? absl::StrCat(" (pid ", *previous.pid, ")") : std::string())
              << " stopped cleanly as " << previous.stop_class;
  }
  absl::Status status = WriteRunningSentinel(state_dir, self.identity, started_at);
  if (!status.ok()) ExitWithError(kExitConfigError, status.message());

  InstanceInfo info;
  info.identity = self.identity;
  info.started_at = started_at;
  info.state_dir = state_dir.path();
  info.detectors = chain_names;
  info.exit_codes = exit_policy.ToString();
  info.marker_ttl = absl::FormatDuration(marker_ttl);
  status = WriteInstanceInfo(state_dir, info);
  if (!status.ok()) ExitWithError(kExitConfigError, status.message());

  SdNotifier notifier(environment);
  StopController::Options options;
  options.chain = std::move(chain);
  options.exit_policy = exit_policy;
  options.state_dir = &state_dir;
  options.marker_ttl = marker_ttl;
  options.self = self;
  StopController controller(std::move(options));
  controller.SetPhase(Phase::kStarting);
  controller.Start();  // From here on a stop signal is classified.

  LOG(INFO) << "gateway pid " << self.identity.pid << " starting; state directory "
            << state_dir.path() << "; detectors " << absl::StrJoin(chain_names, ",")
            << "; exit codes " << exit_policy.ToString();

  if (startup_delay > absl::ZeroDuration()) controller.WaitForStop(startup_delay);
  std::unique_ptr<Watchdog> watchdog;  // WatchdogSec=: pings through serving and the drain
  if (!controller.stop_requested()) {
    controller.SetPhase(Phase::kServing);
    (void)notifier.Notify("READY=1\nSTATUS=serving");
    watchdog = Watchdog::StartIfRequested(notifier, environment, self.identity.pid);
    LOG(INFO) << "serving; stop with Ctrl-C, SIGTERM or gatewayctl stop";
    while (!controller.WaitForStop(absl::Hours(1))) {
    }
  }

  LatchedStop stop = controller.latched();
  (void)notifier.Notify("STOPPING=1\nSTATUS=stopping: " +
                        std::string(StopClassName(stop.verdict.stop_class)));
  StopRecord record;
  record.verdict = stop.verdict;
  record.signal = stop.signal;
  record.sender_comm = stop.sender_comm;
  record.phase = stop.phase;
  record.exit_code = stop.exit_code;
  record.self = self.identity;
  record.started_at = started_at;
  record.signal_at = stop.signal_at;
  record.signals_received = controller.signals_received();
  record.previous = previous;
  record.chain = chain_names;
  record.ignored_markers = stop.marker_warnings;
  record.drain.skipped = controller.skip_drain_reason();
  record.exited_at = absl::Now();
  WriteRecord(state_dir, record);
  WriteTerminationLog(record);  // Kubernetes terminationMessagePath
  RemoveRunningSentinelIfOurs(state_dir, self.identity);
  LOG(INFO) << "exiting with status " << stop.exit_code << " ("
            << StopClassName(stop.verdict.stop_class) << ")";
  Exit(stop.exit_code);
}

}  // namespace gateway

int main(int argc, char** argv) { return gateway::Main(argc, argv); }
