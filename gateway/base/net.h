// Socket addresses and the socket calls the data plane needs, wrapped once:
// parsing "127.0.0.1:8080" / "[::1]:8080", binding listeners, connecting
// without blocking, passing descriptors over Unix sockets (SCM_RIGHTS).
#ifndef GATEWAY_BASE_NET_H_
#define GATEWAY_BASE_NET_H_

#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/base/sys.h"

namespace gateway {

struct SocketAddress {
  sockaddr_storage storage = {};
  socklen_t length = 0;

  // "127.0.0.1:8080" or "[::1]:8080"; numeric hosts only, port 0-65535.
  static absl::StatusOr<SocketAddress> Parse(const std::string& text);
  // The address a socket is bound to (getsockname).
  static absl::StatusOr<SocketAddress> OfSocket(int fd);
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  int port() const;
  std::string ToString() const;
};

// A non-blocking TCP listener (SO_REUSEADDR, backlog 4096). Unavailable
// with a clear message when the address is in use.
absl::StatusOr<UniqueFd> BindListener(const SocketAddress& address);

// Starts a non-blocking connect; returns the socket (connected or
// in progress, EINPROGRESS).
absl::StatusOr<UniqueFd> StartConnect(const SocketAddress& address);

// Sends `fds` with `payload` in one message (SCM_RIGHTS).
absl::Status SendFds(int socket, const std::string& payload, const std::vector<int>& fds);
// Receives one message with up to `max_fds` descriptors (blocking).
absl::StatusOr<std::pair<std::string, std::vector<UniqueFd>>> ReceiveFds(int socket,
                                                                      size_t max_fds);

absl::Status SetNonBlocking(int fd);

}  // namespace gateway

#endif  // GATEWAY_BASE_NET_H_
