// The control socket (control.sock in the state directory): how gatewayctl
// and a successor talk to the running gateway. Newline-delimited JSON
// requests on a Unix stream socket; only peers with our uid (or root) are
// served, checked with SO_PEERCRED on every connection. The socket is
// created under a temporary name and renamed into place, so a successor's
// socket replaces its predecessor's atomically.
#ifndef GATEWAY_OPS_CONTROL_SERVER_H_
#define GATEWAY_OPS_CONTROL_SERVER_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/dataplane/proxy.h"
#include "gateway/base/state_dir.h"
#include "gateway/base/sys.h"
#include "nlohmann/json.hpp"

namespace gateway {

// One accepted control connection. The handler may keep it (to answer
// later, e.g. with progress) by holding the shared pointer.
class ControlConnection {
 public:
  ControlConnection(UniqueFd fd, pid_t peer_pid) : fd_(std::move(fd)), peer_pid_(peer_pid) {}
  int fd() const { return fd_.get(); }
  pid_t peer_pid() const { return peer_pid_; }
  // Sends one JSON line; false when the peer is gone.
  bool Send(const nlohmann::json& message);
  void Close() { fd_.Reset(); }
  bool closed() const { return !fd_.valid(); }

 private:
  UniqueFd fd_;
  pid_t peer_pid_;
};

class ControlServer {
 public:
  using Handler = std::function<void(const nlohmann::json& request,
                                     std::shared_ptr<ControlConnection> connection)>;

  // Binds control.sock in `dir` (0600) and serves it on `proxy`'s loop.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(const StateDirectory& dir,
                                                              Proxy* proxy, Handler handler);
  ~ControlServer();
  // Stops serving and removes the socket if it is still ours.
  void Stop();

 private:
  ControlServer(Proxy* proxy, Handler handler) : proxy_(proxy), handler_(std::move(handler)) {}
  void Accept();
  void Read(int fd);

  Proxy* proxy_;
  Handler handler_;
  UniqueFd listen_fd_;
  std::string path_;
  ino_t inode_ = 0;
  struct Pending {
    std::shared_ptr<ControlConnection> connection;
    std::string buffer;
  };
  std::map<int, Pending> reading_;  // connections whose request is incomplete
};

// Client side: connects to `socket_path` and checks that the server runs
// as our uid or root (so a planted socket cannot collect descriptors).
absl::StatusOr<UniqueFd> ConnectControl(const std::string& socket_path);
// Reads one JSON line (blocking, with a timeout).
absl::StatusOr<nlohmann::json> ReadControlLine(int fd, absl::Duration timeout);
absl::Status WriteControlLine(int fd, const nlohmann::json& message);

}  // namespace gateway

#endif  // GATEWAY_OPS_CONTROL_SERVER_H_
