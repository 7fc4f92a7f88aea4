// Whether a binary may be executed on a client's say-so: the successor of a
// replacement (`gatewayctl replace --binary=PATH`) runs with the gateway's
// uid, often root, so it must be a file only root or that uid could have
// put there. Judged the way sudo judges its own paths: the file and every
// directory from it up to / are owned by root or the gateway's uid and not
// writable by group or others (no exception for the sticky bit: /tmp is
// refused). The check walks the canonical path one component at a time
// with O_NOFOLLOW and keeps the file open, so what is executed is the
// inode that was checked (fexecve), not whatever the path names later.
// gatewayctl runs the same check for an early, clear error; the gateway
// runs it again because it must not trust its client.
#ifndef GATEWAY_BASE_TRUSTED_EXECUTABLE_H_
#define GATEWAY_BASE_TRUSTED_EXECUTABLE_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "gateway/base/sys.h"

namespace gateway {

struct TrustedExecutable {
  std::string path;  // canonical: absolute, symbolic links resolved
  UniqueFd fd;       // the checked file, O_RDONLY|O_CLOEXEC: execute this
  // Starts with "#!": the kernel hands the interpreter /dev/fd/N, so the
  // descriptor must stay open across the exec (clear FD_CLOEXEC in the
  // child just before fexecve).
  bool script = false;
};

// Checks `path` (absolute) for execution by a process running as
// `owner_uid`. The error names the path and the reason, e.g.
// "/opt/gw/gateway is writable by others (mode 0777)".
absl::StatusOr<TrustedExecutable> OpenTrustedExecutable(const std::string& path, uid_t owner_uid);

}  // namespace gateway

#endif  // GATEWAY_BASE_TRUSTED_EXECUTABLE_H_
