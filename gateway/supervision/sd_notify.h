// The systemd notify protocol (sd_notify(3)), implemented in-tree because it
// is one datagram on a Unix socket and libsystemd is not linked. A no-op
// when NOTIFY_SOCKET is unset.
#ifndef GATEWAY_SUPERVISION_SD_NOTIFY_H_
#define GATEWAY_SUPERVISION_SD_NOTIFY_H_

#include <string>

#include "absl/status/status.h"
#include "gateway/base/proc.h"

namespace gateway {

class SdNotifier {
 public:
  // Reads NOTIFY_SOCKET from the environment captured at start-up: a path,
  // or an abstract socket written with a leading '@'.
  explicit SdNotifier(const Environment& env);

  bool enabled() const { return !socket_path_.empty(); }
  // Sends `state`, e.g. "READY=1\nSTATUS=serving". Errors are returned, not
  // logged: the caller decides whether a lost notification matters.
  absl::Status Notify(const std::string& state) const;

 private:
  std::string socket_path_;
};

}  // namespace gateway

#endif  // GATEWAY_SUPERVISION_SD_NOTIFY_H_
