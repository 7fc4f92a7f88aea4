// Socket activation (sd_listen_fds(3), implemented in-tree): listening
// sockets passed by systemd or systemd-socket-activate in LISTEN_FDS are
// used for the routes (and the admin server) whose address they are bound
// to, instead of binding new ones.
#ifndef GATEWAY_SUPERVISION_SOCKET_ACTIVATION_H_
#define GATEWAY_SUPERVISION_SOCKET_ACTIVATION_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/base/proc.h"
#include "gateway/base/sys.h"

namespace gateway {

inline constexpr int kFirstActivatedFd = 3;  // SD_LISTEN_FDS_START

// The passed listening sockets keyed by their bound address
// ("127.0.0.1:8080"), when LISTEN_PID names this process. Makes them
// close-on-exec. Fails on a malformed LISTEN_FDS or a passed descriptor
// that is not a listening TCP socket.
absl::StatusOr<std::map<std::string, UniqueFd>> TakeActivatedSockets(const Environment& env);

}  // namespace gateway

#endif  // GATEWAY_SUPERVISION_SOCKET_ACTIVATION_H_
