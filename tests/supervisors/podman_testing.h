// What the podman rows share (docs/supervisors.md, SUPERVISORS.md): the
// command line that works on these machines (runc, resource limits the
// sandbox can grant), the probe that decides whether podman can run a
// container here at all, and a local image of the real gateway built
// without a registry, for consumers that need one (podman kube play).
#ifndef TESTS_SUPERVISORS_PODMAN_TESTING_H_
#define TESTS_SUPERVISORS_PODMAN_TESTING_H_

#include <optional>
#include <string>

#include "tests/supervisors/supervisor_testing.h"

namespace gateway::testing {

// crun fails on these hybrid-cgroup machines; runc works.
inline constexpr char kPodman[] = "podman --runtime runc";
// The sandbox cannot raise resource limits to podman's defaults.
inline constexpr char kPodmanUlimits[] = "--ulimit nofile=1024:4096 --ulimit nproc=1000:2000";

// Why podman cannot run containers here (not root, a program missing, a
// probe container failing), or nullopt when it can.
std::optional<std::string> PodmanSkipReason();

// Imports an image tagged `tag` (e.g. localhost/gw-123:test) whose root
// holds /bin/gateway (a copy of `dir`'s gateway) and every shared library
// `ldd` names, with ENTRYPOINT ["/bin/gateway"]: no registry, no network.
// Returns the error (the failing step's output) or nullopt.
std::optional<std::string> BuildGatewayImage(const ScratchDir& dir, const std::string& tag);

// A containers.conf for pods, written into `dir`: podman 4.3 gives every
// container of a pod, the infra container too, limits above these
// machines' hard limits unless default_ulimits says otherwise (soft and
// hard equal: 4.3 swaps them when parsing this key). Returns its path,
// for CONTAINERS_CONF=.
std::string WritePodContainersConf(const ScratchDir& dir);

}  // namespace gateway::testing

#endif  // TESTS_SUPERVISORS_PODMAN_TESTING_H_
