// gatewayctl explain --signal=TERM --sender=PID: a dry run of the real
// detector chain against the running instance's identity, parent,
// environment (from /proc/PID/environ, which is what it captured at exec)
// and markers, for a signal that PID would send now, with the instance's
// runtime plugins (instance.json "detector_plugins"). Consumes nothing.
#include <signal.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/stop/detector_chain.h"
#include "gateway/stop/detector_registry.h"
#include "gateway/stop/evidence.h"
#include "gateway/stop/exit_policy.h"
#include "gateway/stop/markers.h"
#include "gateway/plugins/plugin_loader.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"

DEFINE_string(signal, "TERM", "explain: the signal, e.g. TERM, INT, QUIT");
DEFINE_string(sender, "",
              "explain: pid of the process that would send the signal (0: from outside the "
              "instance's PID namespace)");

namespace gateway::ctl {
namespace {

absl::StatusOr<SelfEvidence> InstanceEvidence(const InstanceInfo& info) {
  SelfEvidence self;
  self.identity = info.identity;
  ProcessInfo process = ReadProcessInfo(info.identity.pid);
  if (!process.readable) {
    return absl::NotFoundError(absl::StrCat("pid ", info.identity.pid, " is gone"));
  }
  self.ppid = process.ppid;
  self.uid = process.uid.value_or(0);
  absl::StatusOr<Environment> env = ReadEnviron(info.identity.pid);
  if (!env.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot read the environment of pid ", info.identity.pid,
        " (run as its user or root): ", env.status().message()));
  }
  self.environment = *env;
  return self;
}

absl::StatusOr<SignalInfo> HypotheticalSignal() {
  std::optional<int> signo = ParseSignal(FLAGS_signal);
  if (!signo) return absl::InvalidArgumentError(absl::StrCat("unknown signal '", FLAGS_signal, "'"));
  int sender = -1;
  if (!absl::SimpleAtoi(FLAGS_sender, &sender) || sender < 0) {
    return absl::InvalidArgumentError("explain needs --sender=PID (the process that would send the signal)");
  }
  SignalInfo signal;
  signal.signo = *signo;
  signal.code = SI_USER;  // what kill(2) produces
  signal.sender_pid = sender;
  if (sender > 0) {
    ProcessInfo process = ReadProcessInfo(sender);
    if (!process.readable || !process.uid) {
      return absl::NotFoundError(absl::StrCat("no process with pid ", sender));
    }
    signal.sender_uid = *process.uid;  // kill(2) reports the real uid
  }
  return signal;
}

}  // namespace

int ExplainCommand(const Invocation& inv) {
  absl::StatusOr<SignalInfo> signal = HypotheticalSignal();
  if (!signal.ok()) {
    return Fail(inv, signal.status(),
                absl::IsInvalidArgument(signal.status()) ? kExitUsage : kExitFailure);
  }
  absl::StatusOr<Located> located = LocateRunning(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  const InstanceInfo& info = *located->instance;
  absl::StatusOr<SelfEvidence> self = InstanceEvidence(info);
  if (!self.ok()) return Fail(inv, self.status());

  // The instance's runtime plugins too, told it is a dry run.
  DetectorRegistry::Builder detectors = DetectorRegistry::Builder::FromStaticRegistrations();
  // With the instance's timeout: a plugin slower than the default but
  // within the instance's limit must not be reported as timing out here.
  PluginOptions plugin_options;
  plugin_options.dry_run = true;
  // (An instance from before the field existed has none: the default.)
  if (absl::StatusOr<absl::Duration> timeout = ParsePluginTimeout(info.detector_plugin_timeout);
      timeout.ok()) {
    plugin_options.detect_timeout = *timeout;
  }
  if (absl::Status loaded = AddRuntimePlugins(info.detector_plugins, plugin_options, &detectors);
      !loaded.ok()) {
    return Fail(inv, CommandError{kExitFailure, absl::StrCat("cannot load the instance's plugins: ",
                                                             loaded.message())});
  }
  absl::StatusOr<DetectorRegistry> registry = std::move(detectors).Build();
  if (!registry.ok()) return Fail(inv, registry.status());
  absl::StatusOr<DetectorChain> chain = registry->MakeChain(info.detectors);
  if (!chain.ok()) {
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("cannot rebuild the instance's chain: ",
                                               chain.status().message())});
  }
  absl::StatusOr<ExitPolicy> policy = ExitPolicy::Parse(info.exit_codes);
  absl::Duration ttl = kDefaultMarkerTtl;
  if (!info.marker_ttl.empty() && !absl::ParseDuration(info.marker_ttl, &ttl)) {
    ttl = kDefaultMarkerTtl;
  }
  StateDirMarkerStore markers(&*located->dir, ttl, /*dry_run=*/true);
  StopContext ctx = CollectStopContext(*signal, ReadSender(*signal), *self, &markers, Phase::kServing, absl::Now());
  Verdict verdict = ClassifyStop(*chain, ctx);
  int exit_code = policy.ok() ? policy->ExitCodeFor(verdict.stop_class) : -1;
  std::vector<std::string> warnings = markers.TakeWarnings();

  nlohmann::json j = {
      {"pid", info.identity.pid},
      {"signal", SignalName(signal->signo)},
      {"sender", {{"pid", signal->sender_pid}, {"uid", signal->sender_uid}, {"comm", ctx.sender.comm}}},
      {"class", std::string(StopClassName(verdict.stop_class))},
      {"detector", verdict.detector.empty() ? nlohmann::json(nullptr) : nlohmann::json(verdict.detector)},
      {"evidence", verdict.evidence},
      {"exit_code", exit_code},
      {"warnings", warnings},
  };
  std::string text = absl::StrCat(
      ctx.DescribeSignal(), " to pid ", info.identity.pid, " would be ",
      StopClassName(verdict.stop_class), " (",
      verdict.detector.empty() ? "no detector decided" : "decided by " + verdict.detector,
      "), exit status ", exit_code, "\n  evidence: ", verdict.evidence, "\n");
  for (const std::string& warning : warnings) absl::StrAppend(&text, "  warning: ", warning, "\n");
  PrintResult(inv, j, text);
  return kExitOk;
}

}  // namespace gateway::ctl
