// Socket addresses and the socket calls the data plane needs, wrapped once:
// parsing "127.0.0.1:8080" / "[::1]:8080", binding listeners, connecting
// without blocking, passing descriptors over Unix sockets (SCM_RIGHTS).
#ifndef GATEWAY_BASE_NET_H_
#define GATEWAY_BASE_NET_H_

#include <netinet/in.h>
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

// A TCP peer's address (IPv4 or IPv6) in the 28 bytes an IPv6 one needs
// rather than sockaddr_storage's 128: what a relayed connection keeps for
// its lifetime (two of them), so idle connections stay cheap. An address of
// another family does not fit and is kept as unset.
class CompactAddress {
 public:
  CompactAddress() = default;
  explicit CompactAddress(const SocketAddress& address);
  SocketAddress Get() const;  // unset (length 0) when it was unset or did not fit
  bool empty() const { return length_ == 0; }

 private:
  union {
    sockaddr_in v4;
    sockaddr_in6 v6;
  } storage_ = {};
  socklen_t length_ = 0;
};

// Whether a connection to `target` reaches a socket listening on
// `listen`: same family and port, and the same address, or `listen` is the
// wildcard (0.0.0.0, [::]) and `target` a loopback or wildcard address (a
// connect to the wildcard goes to 127.0.0.1 / ::1). Other local interface
// addresses and IPv4-mapped IPv6 are not considered.
bool ListenAddressCovers(const SocketAddress& listen, const SocketAddress& target);

// A non-blocking TCP listener (SO_REUSEADDR, backlog 4096). The status
// code of a failure is what start-up turns into an exit status, decided
// here once (docs/configuration.md, "Start-up failures"):
//   Unavailable (temporary, exit 75): EADDRINUSE; EMFILE, ENFILE, ENOBUFS,
//     ENOMEM (out of descriptors or memory now).
//   FailedPrecondition (configuration error, exit 78): EACCES, EPERM (a
//     port below ip_unprivileged_port_start without CAP_NET_BIND_SERVICE),
//     EADDRNOTAVAIL (not an address of this host), anything else.
absl::StatusOr<UniqueFd> BindListener(const SocketAddress& address);
// Whether a BindListener failure may go away by itself (exit 75) rather
// than being a configuration error (exit 78).
bool IsTemporaryBindFailure(const absl::Status& status);

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
