// The Kubernetes termination message (terminationMessagePath): at stop, a
// short line with the class, the detector and the evidence goes to
// --termination_log, so `kubectl describe pod` shows why the container
// stopped. Kubernetes reads at most 4096 bytes.
#ifndef GATEWAY_SUPERVISION_TERMINATION_LOG_H_
#define GATEWAY_SUPERVISION_TERMINATION_LOG_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "gateway/stop/stop_record.h"

namespace gateway {

inline constexpr size_t kTerminationMessageMaxBytes = 4096;
inline constexpr char kDefaultTerminationLog[] = "/dev/termination-log";

// "planned by container_pid1, exit 0: SIGTERM from pid 0 ...", cut at a
// UTF-8 character boundary to at most kTerminationMessageMaxBytes.
std::string TerminationMessage(const StopRecord& record);

// Writes `message` to `path` in place (truncate, write, fsync): the kubelet
// bind-mounts a file there, so a rename over it would fail.
absl::Status WriteTerminationMessage(const std::string& path, const std::string& message);

// What main calls at stop: writes the message for `record` to
// --termination_log. The default path is used only when it exists and is
// writable (outside Kubernetes it does not exist); an explicit path that
// cannot be written is logged as an error; an empty flag disables it.
void WriteTerminationLog(const StopRecord& record);

}  // namespace gateway

#endif  // GATEWAY_SUPERVISION_TERMINATION_LOG_H_
