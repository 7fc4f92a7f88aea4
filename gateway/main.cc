// The gateway binary: start-up, serving and the stop sequence, in order.
// Shutdown signals are blocked before anything else so that no thread can
// ever take one with a default action or a crash handler; the stop
// controller's thread reads them and the detector chain classifies the
// first. The exit status is the exit policy's answer for that class.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gateway/ops/admin_server.h"
#include "gateway/ops/control_server.h"
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/exit_policy.h"
#include "gateway/base/flags.h"
#include "gateway/stop/instance.h"
#include "gateway/base/json_util.h"
#include "gateway/stop/markers.h"
#include "gateway/base/net.h"
#include "gateway/plugins/plugin_loader.h"
#include "gateway/dataplane/proxy.h"
#include "gateway/supervision/replacement.h"
#include "gateway/base/resources.h"
#include "gateway/dataplane/access_log.h"
#include "gateway/dataplane/health_checker.h"
#include "gateway/dataplane/route_reloader.h"
#include "gateway/dataplane/routes.h"
#include "gateway/supervision/sd_notify.h"
#include "gateway/base/signals.h"
#include "gateway/supervision/socket_activation.h"
#include "gateway/base/state_dir.h"
#include "gateway/stop/stop_controller.h"
#include "gateway/stop/stop_record.h"
#include "gateway/dataplane/telemetry.h"
#include "gateway/dataplane/workers.h"
#include "gateway/supervision/termination_log.h"
#include "gateway/supervision/watchdog.h"
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
DEFINE_bool(check, false,
            "Check the configuration (every flag, --route, --config, --detector_plugin, "
            "--admin) with the code a start runs, print one line and exit: 0 when it is ok, 78 "
            "when not. Binds nothing and writes nothing (no state directory); whether a listen "
            "port is free is not checked, so it works while the running gateway holds them");
DEFINE_string(exit_codes, "",
              "Exit status per stop class, e.g. unexpected=1,planned=0 (default "
              "takeover=0,planned=0,unexpected=1)");
DEFINE_string(marker_ttl, "60s", "How long a takeover or planned-stop marker stays valid");
DEFINE_string(route, "",
              "LISTEN=UPSTREAM, e.g. 127.0.0.1:8080=127.0.0.1:9000; repeat the flag or separate "
              "routes with commas");
DEFINE_string(config, "", "JSON file with routes (see docs/configuration.md); SIGHUP re-reads it");
DEFINE_string(admin, "127.0.0.1:9901",
              "Admin HTTP address (/healthz /readyz /status /metrics); empty disables it");
DEFINE_string(drain_timeout, "30s",
              "How long open connections may finish after a stop signal before they are cut");
DEFINE_string(shutdown_delay, "0s",
              "Lame duck: after a stop signal /readyz fails and STOPPING=1 is sent at once, but "
              "the listeners keep accepting this long before the drain starts, until load "
              "balancers (Kubernetes endpoints) have stopped sending. Not for a takeover or "
              "SIGQUIT; a second stop signal skips it");
DEFINE_string(access_log, "",
              "One JSON line per finished connection to this file ('-': stderr; empty: none); "
              "reopened on SIGUSR1 and gatewayctl reopen-logs (logrotate)");
DEFINE_int32(access_log_buffer_kb, 4096,
             "Access log lines held in memory while the file cannot keep up (KiB, 16..1048576); "
             "beyond it lines are dropped and counted, never waited for");
DEFINE_int32(workers, 0,
             "Event loops (threads) that relay connections; 0: one per CPU this process may "
             "use (its affinity mask, capped by a cgroup v2 cpu.max quota)");
DEFINE_string(takeover_from, "",
              "Internal, set by a running gateway when it starts its successor: take over the "
              "listening sockets from the gateway serving this control socket");
DEFINE_string(startup_delay_for_test, "0s",
              "Test only: stay in the starting phase this long before serving");
DEFINE_string(reload_delay_for_test, "0s",
              "Test only: each SIGHUP reload waits this long before reading --config");

static gateway::RepeatableFlag route_is_repeatable("route");

namespace gateway {
namespace {

constexpr char kUsage[] =
    "gateway: a layer-4 TCP gateway that knows why it is stopped.\n"
    "Usage: gateway [flags]\n"
    "Exit status: 0 planned or takeover stop, 1 unexpected stop, 75 temporary start-up\n"
    "failure (instance lock held, address in use), 78 configuration error.\n"
    "       gateway --check [flags]: validate the configuration and exit (0 ok, 78 not).";

// Far more event loops than any host has cores is a typo.
constexpr int kMaxWorkers = 1024;

// A worker loop that has not gone round for this long is wedged: fail
// loudly (the supervisor restarts the gateway) rather than serve the
// connections of the other workers only.
constexpr absl::Duration kWedgedWorkerLimit = absl::Seconds(10);

// While taking over, start-up errors are also reported to the predecessor,
// which then keeps serving and tells the operator why.
int g_takeover_channel = -1;

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
  if (g_takeover_channel >= 0) {
    (void)WriteControlLine(g_takeover_channel, {{"ready", false}, {"error", std::string(message)}});
  }
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

// The routes from --route and --config: start-up and every SIGHUP
// (RouteReloader) validate with this one function.
absl::StatusOr<std::vector<Route>> LoadRoutesFromFlags() {
  return LoadRoutes(FLAGS_route, FLAGS_config);
}

// The exit status for a listener that could not be bound (net.h decides).
int BindFailureExitCode(const absl::Status& status) {
  return IsTemporaryBindFailure(status) ? kExitTemporary : kExitConfigError;
}

// Lets open connections finish until none is left, the deadline passes or
// a second stop signal says not to wait; then cuts what is left.
DrainOutcome Drain(Workers* workers, StopController* controller, Telemetry* telemetry,
                   const SdNotifier& notifier, absl::Duration timeout,
                   const std::function<void(int64_t, absl::Duration)>& progress) {
  DrainOutcome outcome;
  absl::Time start = absl::Now();
  absl::Time deadline = start + timeout;
  outcome.connections_at_signal = workers->active_connections();
  if (outcome.connections_at_signal > 0 && !controller->skip_drain()) {
    LOG(INFO) << "draining " << outcome.connections_at_signal << " connection(s) for up to "
              << absl::FormatDuration(timeout);
    auto report = [&] {
      absl::Duration left = std::max(absl::ZeroDuration(), deadline - absl::Now());
      // Ask systemd for time in steps, so TimeoutStopSec never cuts a drain
      // that is still within --drain_timeout.
      (void)notifier.Notify(absl::StrCat(
          "EXTEND_TIMEOUT_USEC=", absl::ToInt64Microseconds(std::min(left, absl::Seconds(5)) +
                                                           absl::Seconds(5)),
          "\nSTATUS=draining: ", workers->active_connections(), " connection(s) left, ",
          absl::FormatDuration(absl::Trunc(left, absl::Seconds(1))), " to the deadline"));
      progress(workers->active_connections(), left);
    };
    report();
    workers->main().RunUntil(
        [&] { return workers->active_connections() == 0 || controller->skip_drain(); }, deadline,
        absl::Seconds(1), report);
  }
  outcome.skipped = controller->skip_drain_reason();
  outcome.closed_at_deadline = workers->CloseAllConnections();
  telemetry->closed_at_deadline.fetch_add(outcome.closed_at_deadline);
  if (outcome.closed_at_deadline > 0) {
    LOG(WARNING) << "closed " << outcome.closed_at_deadline << " connection(s) at the "
                 << (outcome.skipped.empty() ? "drain deadline" : outcome.skipped);
  }
  outcome.duration = absl::Now() - start;
  return outcome;
}

// The lame-duck period: /readyz already fails, but a load balancer learns
// that only some seconds later (a pod's removal from the Service endpoints
// reaches kube-proxy and external balancers after the kubelet's SIGTERM),
// so the listeners keep accepting, and relaying, for `delay` before the
// drain. Not for a takeover (the successor serves the sockets), a stop
// while starting (never ready, so never sent traffic), SIGQUIT or a second
// stop signal, which also ends a delay being served.
ShutdownDelayOutcome ServeShutdownDelay(Proxy* proxy, StopController* controller,
                                        const SdNotifier& notifier, const LatchedStop& stop,
                                        absl::Duration delay) {
  ShutdownDelayOutcome outcome;
  outcome.configured = delay;
  if (delay <= absl::ZeroDuration()) return outcome;
  if (stop.verdict.stop_class == StopClass::kTakeover) {
    outcome.skipped = "takeover: the successor serves the listening sockets";
  } else if (stop.phase == Phase::kStarting) {
    outcome.skipped = "stopped while starting: never ready, so no load balancer sends traffic";
  } else if (controller->skip_drain()) {
    outcome.skipped = controller->skip_drain_reason();
  }
  if (!outcome.skipped.empty()) {
    LOG(INFO) << "no shutdown delay: " << outcome.skipped;
    return outcome;
  }
  LOG(INFO) << "shutdown delay: /readyz fails; still accepting for "
            << absl::FormatDuration(delay) << " before the drain";
  (void)notifier.Notify(absl::StrCat(
      "EXTEND_TIMEOUT_USEC=", absl::ToInt64Microseconds(delay + absl::Seconds(5)),
      "\nSTATUS=shutdown delay: accepting for ", absl::FormatDuration(delay), ", then draining"));
  absl::Time start = absl::Now();
  proxy->RunUntil([&] { return controller->skip_drain(); }, start + delay);
  outcome.served = absl::Now() - start;
  if (controller->skip_drain()) {
    outcome.skipped = controller->skip_drain_reason();
    LOG(INFO) << "shutdown delay ended after " << absl::FormatDuration(outcome.served) << ": "
              << outcome.skipped;
  }
  return outcome;
}

// The successor is serving on the inherited sockets: tell systemd it is the
// main process now, write the takeover marker naming the predecessor, tell
// the predecessor, and only then signal it.
void CompleteTakeover(const Inheritance& inheritance, const StateDirectory& state_dir,
                      const SdNotifier& notifier, const std::function<void()>& publish) {
  const ProcessIdentity& old = inheritance.predecessor;
  Marker marker = NewMarker(old, absl::StrCat("replaced by pid ", getpid()));
  absl::Status written = WriteMarker(state_dir, MarkerKind::kTakeover, marker);
  if (!written.ok()) ExitWithError(kExitTemporary, written.message());
  publish();
  (void)notifier.Notify(absl::StrCat("MAINPID=", getpid(), "\nREADY=1\nSTATUS=serving"));
  (void)WriteControlLine(inheritance.channel.get(), {{"ready", true}, {"pid", getpid()}});
  if (!IsAlive(old) || kill(old.pid, SIGTERM) != 0) {
    LOG(WARNING) << "took over, but could not signal the predecessor pid " << old.pid;
    return;
  }
  LOG(INFO) << "took over the listening sockets from pid " << old.pid << "; sent it SIGTERM";
}

// Logs how the previous run ended. One that left no record of its own
// (unclean, or its record could not be written) also gets a line in the
// stop history, so `gatewayctl history` lists it.
void ReportPreviousRun(const StateDirectory& state_dir, const PreviousRun& previous) {
  std::string line = DescribePreviousRun(previous, "previous run");
  if (previous.exit == "unclean" || previous.exit == "unrecorded") {
    LOG(WARNING) << line;
    absl::Status appended =
        AppendStopHistory(state_dir, PreviousRunHistoryEntry(previous, absl::Now(), getpid()));
    if (!appended.ok()) {
      LOG(WARNING) << "could not add the previous run to the stop history: " << appended.message();
    }
  } else if (previous.exit == "clean") {
    LOG(INFO) << line;
  }
}

// What the flags and the config say, parsed and checked; any error is one
// line and exit 78.
struct Settings {
  std::vector<std::string> chain_names;
  DetectorChain chain;
  ExitPolicy exit_policy;
  absl::Duration marker_ttl;
  absl::Duration drain_timeout;
  absl::Duration shutdown_delay;
  absl::Duration startup_delay;
  absl::Duration reload_delay;
  std::vector<Route> routes;
  int worker_count = 1;
  std::optional<SocketAddress> admin_address;
};

Settings SettingsFromFlags(const DetectorRegistry& registry) {
  Settings settings;
  settings.chain_names =
      FLAGS_detectors.empty() ? DefaultDetectorOrder() : SplitDetectorList(FLAGS_detectors);
  settings.chain = ValueOrExit(registry.MakeChain(settings.chain_names), kExitConfigError);
  settings.exit_policy = ValueOrExit(ExitPolicy::Parse(FLAGS_exit_codes), kExitConfigError);
  settings.marker_ttl =
      ValueOrExit(ParseDurationFlag("marker_ttl", FLAGS_marker_ttl), kExitConfigError);
  settings.drain_timeout =
      ValueOrExit(ParseDurationFlag("drain_timeout", FLAGS_drain_timeout), kExitConfigError);
  settings.shutdown_delay =
      ValueOrExit(ParseDurationFlag("shutdown_delay", FLAGS_shutdown_delay), kExitConfigError);
  settings.startup_delay = ValueOrExit(
      ParseDurationFlag("startup_delay_for_test", FLAGS_startup_delay_for_test),
      kExitConfigError);
  settings.reload_delay = ValueOrExit(
      ParseDurationFlag("reload_delay_for_test", FLAGS_reload_delay_for_test), kExitConfigError);
  settings.routes = ValueOrExit(LoadRoutesFromFlags(), kExitConfigError);
  if (FLAGS_workers < 0 || FLAGS_workers > kMaxWorkers) {
    ExitWithError(kExitConfigError, absl::StrCat("--workers=", FLAGS_workers, " is out of range [0, ",
                                                 kMaxWorkers, "] (0: one per usable CPU)"));
  }
  settings.worker_count = FLAGS_workers > 0 ? FLAGS_workers : UsableCpuCount();
  if (FLAGS_access_log_buffer_kb < 16 || FLAGS_access_log_buffer_kb > 1048576) {
    ExitWithError(kExitConfigError, absl::StrCat("--access_log_buffer_kb=", FLAGS_access_log_buffer_kb,
                                                 " is out of range [16, 1048576]"));
  }
  if (!FLAGS_admin.empty()) {
    settings.admin_address = ValueOrExit(SocketAddress::Parse(FLAGS_admin), kExitConfigError);
  }
  return settings;
}

// `gateway --check`: everything a start validates has been validated by
// then (the same functions, so a check and a start cannot disagree);
// nothing has been bound or written. One line on stdout.
[[noreturn]] void ExitAfterCheck(const Settings& settings) {
  size_t upstreams = 0;
  for (const Route& route : settings.routes) upstreams += route.upstreams.size();
  std::printf("gateway: configuration ok: %zu route(s), %zu upstream(s), %d worker(s), "
              "detectors %s\n",
              settings.routes.size(), upstreams, settings.worker_count,
              absl::StrJoin(settings.chain_names, ",").c_str());
  Exit(0);
}

// The record of this stop, made durable, then the running sentinel: it goes
// only once the record is durable; without one, it stays and says what this
// stop decided and why there is no record.
void PersistStopRecord(const StateDirectory& state_dir, const StopRecord& record) {
  absl::Status recorded = WriteStopRecord(state_dir, record);
  WriteTerminationLog(record);  // Kubernetes terminationMessagePath
  if (recorded.ok()) {
    RemoveRunningSentinelIfOurs(state_dir, record.self);
  } else if (absl::Status kept = RecordStopInRunningSentinel(state_dir, record, recorded.message());
             !kept.ok()) {
    LOG(ERROR) << "could not note the missing record in the running sentinel either ("
               << kept.message() << "); the next start will report an unclean exit";
  } else {
    LOG(WARNING) << "the running sentinel " << state_dir.PathOf(kRunningSentinel)
                 << " now says this stop was " << StopClassName(record.verdict.stop_class)
                 << " and its record could not be written";
  }
}

}  // namespace

int Main(int argc, char** argv) {
  // --- 1. Command line, logging, settings (errors: one line, 78) ---
  // Before anything that could start a thread (see signals.h).
  BlockHandledSignals();
  const absl::Time started_at = absl::Now();
  const Environment environment = CurrentEnvironment();
  const std::vector<std::string> original_argv(argv, argv + argc);
  const std::string executable = ExecutablePath();

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
  // As HAProxy and nginx do: every connection costs two descriptors.
  const rlimit descriptors = RaiseDescriptorLimit();

  DetectorRegistry::Builder detectors = DetectorRegistry::Builder::FromStaticRegistrations();
  if (absl::Status loaded = AddRuntimePlugins(&detectors); !loaded.ok()) {
    ExitWithError(kExitConfigError, loaded.message());
  }
  DetectorRegistry registry = ValueOrExit(std::move(detectors).Build(), kExitConfigError);
  if (FLAGS_list_detectors) {
    ListDetectors(registry);
    Exit(0);
  }
  Settings settings = SettingsFromFlags(registry);
  // Before the state directory, the lock and any bind: a check must work
  // beside the running gateway and leave no trace.
  if (FLAGS_check) ExitAfterCheck(settings);
  std::vector<std::string>& chain_names = settings.chain_names;
  const ExitPolicy& exit_policy = settings.exit_policy;
  const absl::Duration marker_ttl = settings.marker_ttl;
  const std::vector<Route>& routes = settings.routes;


  // --- 2. State directory, instance lock, what the previous run left ---
  std::string state_path = FLAGS_state_dir.empty()
                               ? DefaultStateDirPath(environment, geteuid())
                               : FLAGS_state_dir;
  StateDirectory state_dir =
      ValueOrExit(StateDirectory::OpenOrCreate(state_path), kExitConfigError);
  // A successor adopts its predecessor's lock (and sockets) instead.
  std::optional<Inheritance> inheritance;
  if (!FLAGS_takeover_from.empty()) {
    inheritance = ValueOrExit(InheritFrom(FLAGS_takeover_from), kExitTemporary);
    g_takeover_channel = inheritance->channel.get();
  }
  InstanceLock lock = inheritance ? InstanceLock::Adopt(std::move(inheritance->lock))
                                  : ValueOrExit(InstanceLock::Acquire(state_dir), kExitTemporary);

  SelfEvidence self;
  self.identity = ValueOrExit(ReadProcessIdentity(getpid()), kExitConfigError);
  self.uid = geteuid();
  self.ppid = getppid();
  self.environment = environment;

  PreviousRun previous = InspectPreviousRun(state_dir);
  ReportPreviousRun(state_dir, previous);
  if (int removed = state_dir.RemoveStaleTempFiles(); removed > 0) {
    LOG(INFO) << "removed " << removed << " temporary file(s) of writes interrupted by a kill";
  }
  absl::Status status = WriteRunningSentinel(state_dir, self.identity, started_at);
  if (!status.ok()) ExitWithError(kExitConfigError, status.message());

  // The access log, before any signal can ask to reopen it. Its writer
  // thread never blocks a worker (access_log.h).
  std::unique_ptr<AccessLog> access_log;
  std::unique_ptr<LogReopener> log_reopener;
  if (!FLAGS_access_log.empty()) {
    access_log = ValueOrExit(
        AccessLog::Open(FLAGS_access_log, static_cast<size_t>(FLAGS_access_log_buffer_kb) * 1024),
        kExitConfigError);
    log_reopener = std::make_unique<LogReopener>(access_log.get());
  }

  // --- 3. The stop controller: from here on a stop signal is classified ---
  SdNotifier notifier(environment);
  // The reloader exists once the listeners are bound; a SIGHUP before that
  // is remembered and requested then.
  std::mutex reloader_mu;
  RouteReloader* reloader = nullptr;    // guarded by reloader_mu
  bool reload_before_reloader = false;  // guarded by reloader_mu
  StopController::Options options;
  options.chain = std::move(settings.chain);
  options.exit_policy = exit_policy;
  options.state_dir = &state_dir;
  options.marker_ttl = marker_ttl;
  options.self = self;
  options.on_reload = [&] {
    std::lock_guard<std::mutex> lock(reloader_mu);
    if (reloader == nullptr) {
      reload_before_reloader = true;
      return;
    }
    reloader->Request();
  };
  options.on_reopen_logs = [&] {
    if (log_reopener == nullptr) {
      LOG(INFO) << "SIGUSR1: no --access_log to reopen";
      return;
    }
    log_reopener->Request([](const absl::Status& status) {
      if (status.ok()) LOG(INFO) << "SIGUSR1: access log reopened";
    });
  };
  StopController controller(std::move(options));
  controller.SetPhase(Phase::kStarting);
  controller.Start();  // From here on a stop signal is classified.

  Telemetry::Identity identity;
  identity.pid = self.identity.pid;
  identity.started_at = started_at;
  identity.state_dir = state_dir.path();
  identity.detectors = chain_names;
  identity.previous = previous;
  absl::StatusOr<std::string> previous_record = state_dir.Read(kLastShutdownFile);
  if (previous_record.ok()) {
    identity.previous_record = nlohmann::json::parse(*previous_record, nullptr, false);
    if (identity.previous_record.is_discarded()) identity.previous_record = nullptr;
  }
  StopHistoryMetrics stop_history(&state_dir, previous);
  identity.stop_history = &stop_history;
  Telemetry telemetry(identity);
  telemetry.SetAccessLog(access_log.get());

  // --- 4. Listeners, workers, admin server, reloads, replacement, control socket ---
  // Listeners: bound now, before READY=1; a busy address is a start-up
  // failure with its own status (75), not a stop.
  // Listening sockets come from a predecessor, from socket activation, or
  // are bound here.
  std::map<std::string, UniqueFd> activated =
      ValueOrExit(TakeActivatedSockets(environment), kExitConfigError);
  std::map<std::string, UniqueFd>& inherited = inheritance ? inheritance->listeners : activated;
  if (!activated.empty()) LOG(INFO) << "socket activation: " << activated.size() << " socket(s)";
  Workers workers(&telemetry, settings.worker_count, access_log.get());
  Proxy& proxy = workers.main();  // worker 0: also the control socket, reloads, the stop wake-up
  status = workers.SetRoutes(routes, &inherited);
  if (!status.ok()) {
    RemoveRunningSentinelIfOurs(state_dir, self.identity);
    ExitWithError(BindFailureExitCode(status), status.message());
  }
  // A successor keeps its predecessor's drained/disabled upstreams and
  // what the health checks found.
  if (inheritance) telemetry.InheritUpstreamState(inheritance->upstream_state);
  std::unique_ptr<AdminServer> admin;
  std::string admin_bound;
  if (settings.admin_address) {
    std::string wanted = settings.admin_address->ToString();
    absl::StatusOr<UniqueFd> admin_fd =
        inheritance && inheritance->admin.valid() ? std::move(inheritance->admin)
        : inherited.count(wanted) > 0             ? std::move(inherited[wanted])
                                                  : BindListener(*settings.admin_address);
    inherited.erase(wanted);
    if (!admin_fd.ok()) {
      RemoveRunningSentinelIfOurs(state_dir, self.identity);
      ExitWithError(BindFailureExitCode(admin_fd.status()),
                    absl::StrCat("admin server: ", admin_fd.status().message()));
    }
    admin_bound = SocketAddress::OfSocket(admin_fd->get())->ToString();
    admin = ValueOrExit(AdminServer::Start(std::move(*admin_fd), &telemetry), kExitTemporary);
  }
  for (const auto& [address, fd] : inherited) {
    LOG(WARNING) << "inherited listening socket " << address << " matches no route; closing it";
  }
  inherited.clear();
  workers.Start();  // workers 1..N-1 accept and relay from here on
  HealthChecker health_checker([&telemetry] { return telemetry.CurrentPools(); });
  if (absl::Status started = health_checker.Start(); !started.ok()) {
    ExitWithError(kExitTemporary, started.message());
  }
  RouteReloader::Options reload_options;
  reload_options.config_path = FLAGS_config;
  reload_options.load = LoadRoutesFromFlags;
  reload_options.stopping = [&controller] { return controller.stop_requested(); };
  reload_options.proxy = &proxy;
  reload_options.install = [&workers](const std::vector<Route>& next) {
    return workers.SetRoutes(next);
  };
  reload_options.telemetry = &telemetry;
  reload_options.delay_for_test = settings.reload_delay;
  RouteReloader route_reloader(std::move(reload_options));
  {
    std::lock_guard<std::mutex> lock(reloader_mu);
    reloader = &route_reloader;
    if (reload_before_reloader) route_reloader.Request();
  }
  proxy.Watch(controller.wake_fd(), [&] { controller.ClearWake(); });

  Replacer::Options replace_options;
  replace_options.executable = executable;
  replace_options.argv = original_argv;
  replace_options.environment = environment;
  replace_options.self = self.identity;
  replace_options.state_dir = &state_dir;
  replace_options.proxy = &proxy;
  replace_options.lock_fd = lock.fd();
  replace_options.admin_fd = [&] { return admin ? admin->listen_fd() : -1; };
  replace_options.admin_address = [&] { return admin_bound; };
  replace_options.stopping = [&] { return controller.stop_requested(); };
  replace_options.upstream_state = [&] { return telemetry.ExportUpstreamState(); };
  Replacer replacer(std::move(replace_options));
  // gatewayctl stop follows the drain: {"cmd":"follow"} subscribes to
  // progress events until this process exits.
  std::vector<std::shared_ptr<ControlConnection>> followers;
  auto notify_followers = [&](const nlohmann::json& event) {
    replacer.ReportToRequester(event);
    for (auto& follower : followers) follower->Send(event);
  };
  // Publishing the instance — instance.json and control.sock, which is how
  // gatewayctl finds it — happens at start-up, except for a successor: it
  // publishes only once it cannot fail any more, just before it signals its
  // predecessor, so a failed replacement leaves the predecessor reachable.
  std::unique_ptr<ControlServer> control;
  auto publish = [&] {
    InstanceInfo info;
    info.identity = self.identity;
    info.started_at = started_at;
    info.state_dir = state_dir.path();
    info.detectors = chain_names;
    info.detector_plugins = DetectorPluginPathsFromFlags();
    info.detector_plugin_timeout = absl::FormatDuration(PluginOptionsFromFlags()->detect_timeout);
    info.exit_codes = exit_policy.ToString();
    info.admin = admin_bound;
    info.marker_ttl = absl::FormatDuration(marker_ttl);
    info.previous = previous;
    absl::Status written = WriteInstanceInfo(state_dir, info);
    if (!written.ok()) ExitWithError(kExitConfigError, written.message());
    control = ValueOrExit(
        ControlServer::Start(state_dir, &proxy,
                             [&](const nlohmann::json& request,
                                 std::shared_ptr<ControlConnection> peer) {
                               if (request["cmd"] == "status") {
                                 peer->Send({{"ok", true}, {"status", telemetry.StatusJson()}});
                                 return;
                               }
                               if (request["cmd"] == "reopen-logs") {
                                 if (log_reopener == nullptr) {
                                   peer->Send({{"ok", false},
                                               {"error", "this gateway has no --access_log"}});
                                   return;
                                 }
                                 // Answered from the loop once the reopen ran.
                                 log_reopener->Request([&proxy, peer](const absl::Status& s) {
                                   proxy.Post([peer, s] {
                                     peer->Send(s.ok() ? nlohmann::json{{"ok", true}}
                                                       : nlohmann::json{{"ok", false},
                                                                        {"error", std::string(s.message())}});
                                   });
                                 });
                                 return;
                               }
                               if (request["cmd"] == "upstream") {
                                 peer->Send(telemetry.UpstreamCommand(request));
                                 return;
                               }
                               if (request["cmd"] == "follow") {
                                 peer->Send({{"event", "following"}, {"pid", getpid()}});
                                 // Followers that went away are forgotten.
                                 followers.erase(
                                     std::remove_if(followers.begin(), followers.end(),
                                                    [](const auto& f) { return f->closed(); }),
                                     followers.end());
                                 followers.push_back(std::move(peer));
                                 return;
                               }
                               replacer.HandleRequest(request, std::move(peer));
                             }),
        kExitConfigError);
  };
  if (!inheritance) publish();

  LOG(INFO) << "gateway pid " << self.identity.pid << " starting; state directory "
            << state_dir.path() << "; admin "
            << (admin_bound.empty() ? "disabled" : "http://" + admin_bound + "/")
            << "; detectors " << absl::StrJoin(chain_names, ",") << "; exit codes "
            << exit_policy.ToString() << "; descriptor limit " << descriptors.rlim_cur
            << "; workers " << workers.count();
  if (routes.empty()) {
    LOG(INFO) << "no routes configured: add --route=LISTEN=UPSTREAM or --config=FILE";
  }

  // --- 5. Serving, until the verdict is latched ---
  if (settings.startup_delay > absl::ZeroDuration()) controller.WaitForStop(settings.startup_delay);
  std::unique_ptr<Watchdog> watchdog;  // WatchdogSec=: pings through serving and the drain
  if (!controller.stop_requested()) {
    controller.SetPhase(Phase::kServing);
    telemetry.SetPhase(Phase::kServing);
    if (inheritance) {
      CompleteTakeover(*inheritance, state_dir, notifier, publish);
      g_takeover_channel = -1;
      inheritance->channel.Reset();
    } else {
      (void)notifier.Notify("READY=1\nSTATUS=serving");
    }
    // Healthy while the event loop keeps going round (it wakes at least
    // every second), so a stuck loop is restarted by systemd.
    watchdog = Watchdog::StartIfRequested(notifier, environment, self.identity.pid, [&] {
      return absl::Now() - workers.oldest_iteration() < absl::Seconds(3);
    });
    LOG(INFO) << "serving; stop with Ctrl-C, SIGTERM or gatewayctl stop";
    proxy.RunUntil([&] { return controller.stop_requested(); }, absl::InfiniteFuture(),
                   absl::Milliseconds(250), [&] {
                     replacer.CheckTimeout();
                     if (std::optional<int> wedged = workers.WedgedWorker(kWedgedWorkerLimit)) {
                       LOG(FATAL) << "worker " << *wedged << " has not gone round its event loop for "
                                  << absl::FormatDuration(kWedgedWorkerLimit)
                                  << ": wedged; aborting rather than serving on the other workers "
                                     "only";
                     }
                   });
  }

  // --- 6. The stop ---
  // The stop: the verdict is latched; drain, record, exit.
  LatchedStop stop = controller.latched();
  if (stop.verdict.stop_class != StopClass::kTakeover) {
    replacer.AbandonIfNotReady(absl::StrCat("this gateway is stopping (",
                                            StopClassName(stop.verdict.stop_class), ")"));
  } else {
    // The successor is the unit's main process now (MAINPID=); with
    // NotifyAccess=all systemd would take our STOPPING=1 as the unit's stop.
    watchdog.reset();
    notifier = SdNotifier(Environment());
  }
  controller.SetPhase(Phase::kDraining);
  telemetry.SetPhase(Phase::kDraining);
  telemetry.SetStopped(stop.verdict.stop_class, stop.verdict.detector);
  (void)notifier.Notify("STOPPING=1\nSTATUS=draining: " +
                        std::string(StopClassName(stop.verdict.stop_class)) + " stop");
  ShutdownDelayOutcome delay =
      ServeShutdownDelay(&proxy, &controller, notifier, stop, settings.shutdown_delay);
  workers.StopAccepting();
  if (stop.verdict.stop_class == StopClass::kTakeover && admin) admin->StopAccepting();
  DrainOutcome drain = Drain(&workers, &controller, &telemetry, notifier, settings.drain_timeout,
                             [&](int64_t connections, absl::Duration left) {
                               notify_followers(
                                   {{"event", "draining"},
                                    {"connections", connections},
                                    {"deadline_in_ms", absl::ToInt64Milliseconds(left)}});
                             });

  health_checker.Stop();

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
  record.detector_warnings = stop.detector_warnings;
  record.drain = drain;
  record.shutdown_delay = delay;
  record.exited_at = absl::Now();
  PersistStopRecord(state_dir, record);
  if (control) control->Stop();
  notify_followers({{"event", "stopped"}, {"record", StopRecordToJson(record)}});
  if (control) control->FlushPending(absl::Seconds(1));  // bounded: a silent client cannot hold the exit
  LOG(INFO) << "exiting with status " << stop.exit_code << " ("
            << StopClassName(stop.verdict.stop_class) << ")";
  Exit(stop.exit_code);
}

}  // namespace gateway

int main(int argc, char** argv) { return gateway::Main(argc, argv); }
