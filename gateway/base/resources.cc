// See resources.h.
#include "gateway/base/resources.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gateway/base/sys.h"

namespace gateway {

rlimit RaiseDescriptorLimit() {
  rlimit limit = {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return limit;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = {limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit;
}

std::optional<int> CpusFromCpuMax(const std::string& text) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  if (fields.size() != 2 || fields[0] == "max") return std::nullopt;
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(fields[0], &quota) || !absl::SimpleAtoi(fields[1], &period) ||
      quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return static_cast<int>(std::max<int64_t>(1, (quota + period - 1) / period));
}

std::optional<std::string> UnifiedCgroupPath(const std::string& proc_self_cgroup) {
  for (absl::string_view line : absl::StrSplit(proc_self_cgroup, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "0::")) return std::string(line);
  }
  return std::nullopt;
}

int UsableCpuCount() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = 1;
  absl::StatusOr<std::string> cgroup = ReadFile("/proc/self/cgroup");
  std::optional<std::string> path =
      cgroup.ok() ? UnifiedCgroupPath(*cgroup) : std::nullopt;
  // A quota anywhere up the tree limits us: walk to the root.
  while (path) {
    absl::StatusOr<std::string> cpu_max =
        ReadFile(absl::StrCat("/sys/fs/cgroup", *path == "/" ? "" : *path, "/cpu.max"));
    if (cpu_max.ok()) {
      if (std::optional<int> quota = CpusFromCpuMax(*cpu_max)) cpus = std::min(cpus, *quota);
    }
    if (path->empty() || *path == "/") break;
    size_t slash = path->rfind('/');
    *path = slash == 0 || slash == std::string::npos ? "/" : path->substr(0, slash);
  }
  return std::max(1, cpus);
}

}  // namespace gateway
