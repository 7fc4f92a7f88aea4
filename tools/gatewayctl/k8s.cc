// gatewayctl k8s: prints a Kubernetes Deployment snippet for the gateway:
// a grace period above the drain budget (the kubelet SIGKILLs after it),
// readiness on /readyz (fails once draining, so the endpoint is removed
// while connections finish), and the termination message the gateway writes
// at stop (class, detector, evidence) where `kubectl describe` shows it.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gflags/gflags.h"
#include "tools/gatewayctl/commands.h"
#include "tools/gatewayctl/deploy.h"

DEFINE_string(image, "gateway:latest", "k8s: the container image");
DEFINE_int32(replicas, 2, "k8s: replicas of the Deployment");
DEFINE_string(name, "gateway",
              "k8s: the Deployment's name and app label (its state volume is NAME-state)");

namespace gateway::ctl {
namespace {

constexpr int kAdminPort = 9901;
// The kubelet's SIGTERM and the pod's removal from the Service endpoints
// happen at the same time, but kube-proxy and external load balancers learn
// of the removal seconds later; until then they still send connections.
constexpr absl::Duration kKubernetesShutdownDelay = absl::Seconds(5);

std::string ShutdownDelayComment(const StopBudget& budget) {
  if (budget.shutdown_delay <= absl::ZeroDuration()) {
    return "      # No shutdown delay (--shutdown_delay=0s): connections sent before the\n"
           "      # endpoints update are refused.\n";
  }
  return absl::StrCat(
      "      # --shutdown_delay=", absl::FormatDuration(budget.shutdown_delay),
      ": on SIGTERM /readyz fails at once, but the gateway keeps\n"
      "      # accepting for this long before it drains, because kube-proxy and external\n"
      "      # load balancers drop the pod from the endpoints only seconds after the\n"
      "      # kubelet's SIGTERM (what a preStop sleep does, without needing a shell).\n");
}

// A DNS-1123 label with room for podman's and Kubernetes' suffixes.
bool IsKubernetesName(const std::string& name) {
  if (name.empty() || name.size() > 57 || name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

std::string YamlArgs(const StopBudget& budget) {
  std::vector<std::string> args = {absl::StrCat("--admin=0.0.0.0:", kAdminPort),
                                   "--state_dir=/var/lib/gateway/state"};
  for (const std::string& arg : StopBudgetArgs(budget)) args.push_back(arg);
  for (const std::string& arg : GatewayArgsFromFlags()) args.push_back(arg);
  return absl::StrCat("[\"", absl::StrJoin(args, "\", \""), "\"]");
}

absl::StatusOr<std::string> KubernetesDeployment() {
  absl::StatusOr<StopBudget> budget = StopBudgetFromFlags(kKubernetesShutdownDelay);
  if (!budget.ok()) return budget.status();
  if (FLAGS_replicas < 1) return absl::InvalidArgumentError("--replicas must be at least 1");
  if (!IsKubernetesName(FLAGS_name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--name=", FLAGS_name,
        " is not a Kubernetes name (lower-case letters, digits and '-', at most 57 characters)"));
  }
  return absl::StrCat(
      "# Deployment snippet printed by `gatewayctl k8s`. The gateway runs as PID 1 of\n"
      "# its container: the kubelet's SIGTERM arrives from outside the PID namespace\n"
      "# (sender pid 0) and is classified planned by container_pid1, exit 0.\n"
      "apiVersion: apps/v1\n"
      "kind: Deployment\n"
      "metadata:\n"
      "  name: ", FLAGS_name, "\n",
      "spec:\n"
      "  replicas: ", FLAGS_replicas, "\n",
      "  selector:\n"
      "    matchLabels:\n"
      "      app: ", FLAGS_name, "\n",
      "  template:\n"
      "    metadata:\n"
      "      labels:\n"
      "        app: ", FLAGS_name, "\n",
      "    spec:\n",
      ShutdownDelayComment(*budget),
      "      # Shutdown delay ", absl::FormatDuration(budget->shutdown_delay), " + drain budget ",
      absl::FormatDuration(budget->drain), " + ", absl::FormatDuration(kStopMargin),
      " to close the rest and write\n"
      "      # the record; the kubelet sends SIGKILL when this runs out.\n"
      "      terminationGracePeriodSeconds: ", CeilSeconds(budget->stop_timeout), "\n",
      "      containers:\n"
      "        - name: gateway\n"
      "          image: ", FLAGS_image, "\n",
      "          args: ", YamlArgs(*budget), "\n",
      "          ports:\n"
      "            - name: admin\n"
      "              containerPort: ", kAdminPort, "\n",
      "          readinessProbe:\n"
      "            httpGet:\n"
      "              path: /readyz\n"
      "              port: admin\n"
      "            periodSeconds: 2\n"
      "            failureThreshold: 1\n"
      "          livenessProbe:\n"
      "            httpGet:\n"
      "              path: /healthz\n"
      "              port: admin\n"
      "            periodSeconds: 10\n"
      "          # The gateway writes \"<class> by <detector>, exit N: <evidence>\" here.\n"
      "          terminationMessagePath: /dev/termination-log\n"
      "          terminationMessagePolicy: FallbackToLogsOnError\n"
      "          securityContext:\n"
      "            readOnlyRootFilesystem: true\n"
      "            allowPrivilegeEscalation: false\n"
      "          volumeMounts:\n"
      "            - name: ", FLAGS_name, "-state\n",
      "              mountPath: /var/lib/gateway\n"
      "      volumes:\n"
      "        # Markers and stop records; lives as long as the pod, so a restarted\n"
      "        # container reports how the previous one ended. (Named after the\n"
      "        # Deployment: podman kube play makes an emptyDir a host volume by name.)\n"
      "        - name: ", FLAGS_name, "-state\n",
      "          emptyDir: {}\n");
}

}  // namespace

int K8sCommand(const Invocation& inv) {
  return PrintGenerated(inv, "manifest", KubernetesDeployment());
}

}  // namespace gateway::ctl
