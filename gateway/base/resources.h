// What the host lets this process use: descriptors (RLIMIT_NOFILE, raised
// to the hard limit at start-up as HAProxy and nginx do) and CPUs (the
// affinity mask, capped by a cgroup v2 cpu.max quota), so that a gateway in
// a container limited to 2 CPUs on a 64-core host sizes itself for 2.
#ifndef GATEWAY_BASE_RESOURCES_H_
#define GATEWAY_BASE_RESOURCES_H_

#include <sys/resource.h>

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace gateway {

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit in
// force afterwards (soft, hard). A failure to raise keeps the old one.
rlimit RaiseDescriptorLimit();

// The quota in a cgroup v2 cpu.max file ("QUOTA PERIOD" or "max PERIOD"),
// as a whole number of CPUs rounded up; nullopt for "max" (no quota) or
// text that is not of that form.
std::optional<int> CpusFromCpuMax(const std::string& text);

// The cgroup v2 path of this process ("0::/PATH" in /proc/self/cgroup), or
// nullopt without a unified hierarchy.
std::optional<std::string> UnifiedCgroupPath(const std::string& proc_self_cgroup);

// CPUs this process may use: the CPUs in its affinity mask, capped by the
// cpu.max quota of its cgroup and every ancestor up to the root. At least 1.
int UsableCpuCount();

}  // namespace gateway

#endif  // GATEWAY_BASE_RESOURCES_H_
