// See socket_activation.h.
#include "gateway/supervision/socket_activation.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/base/net.h"

namespace gateway {

absl::StatusOr<std::map<std::string, UniqueFd>> TakeActivatedSockets(const Environment& env) {
  std::map<std::string, UniqueFd> sockets;
  auto pid = env.find("LISTEN_PID");
  auto fds = env.find("LISTEN_FDS");
  if (pid == env.end() || fds == env.end()) return sockets;
  int listen_pid = 0;
  if (!absl::SimpleAtoi(pid->second, &listen_pid) || listen_pid != getpid()) {
    return sockets;  // meant for another process (inherited environment)
  }
  int count = 0;
  if (!absl::SimpleAtoi(fds->second, &count) || count < 0 || count > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("LISTEN_FDS='", fds->second, "' is not a count"));
  }
  for (int fd = kFirstActivatedFd; fd < kFirstActivatedFd + count; ++fd) {
    UniqueFd owned(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int accepting = 0;
    int type = 0;
    socklen_t len = sizeof accepting;
    socklen_t type_len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM) {
      return absl::InvalidArgumentError(
          absl::StrCat("socket-activated descriptor ", fd, " is not a listening stream socket"));
    }
    absl::StatusOr<SocketAddress> address = SocketAddress::OfSocket(fd);
    if (!address.ok()) return address.status();
    sockets[address->ToString()] = std::move(owned);
  }
  return sockets;
}

}  // namespace gateway
