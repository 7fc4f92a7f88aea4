// sd_notify without libsystemd; see sd_notify.h.
#include "gateway/supervision/sd_notify.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cstring>

#include "gateway/base/sys.h"

namespace gateway {

SdNotifier::SdNotifier(const Environment& env) {
  auto it = env.find("NOTIFY_SOCKET");
  if (it != env.end()) socket_path_ = it->second;
}

absl::Status SdNotifier::Notify(const std::string& state) const {
  if (!enabled()) return absl::OkStatus();
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof addr.sun_path ||
      (socket_path_[0] != '/' && socket_path_[0] != '@')) {
    return absl::InvalidArgumentError("NOTIFY_SOCKET is not a usable socket address");
  }
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  if (socket_path_[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "notify socket");
  // A datagram to a full queue blocks; a manager that does not read must
  // not stall start-up or a stop, so give up after a second (EAGAIN).
  timeval timeout = {1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  ssize_t sent = RetryOnEintr([&] {
    return sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                  reinterpret_cast<const sockaddr*>(&addr), len);
  });
  if (sent < 0) return ErrnoStatus(errno, "send to NOTIFY_SOCKET " + socket_path_);
  return absl::OkStatus();
}

}  // namespace gateway
