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
#include "absl/time/time.h"
#include "gateway/dataplane/proxy.h"
#include "gateway/base/state_dir.h"
#include "gateway/base/sys.h"
#include "nlohmann/json.hpp"

namespace gateway {

// The control socket's bounds (README, "gatewayctl"; docs/configuration.md).
// No client can stall the event loop: requests are read and replies
// written without blocking, and a client past a bound is dropped (one log
// line) while everything else goes on.
inline constexpr size_t kMaxControlRequestBytes = 16 * 1024;      // one request line
inline constexpr size_t kMaxControlReplyBytes = 64 * 1024 * 1024;  // what a reader accepts
inline constexpr size_t kMaxControlPendingBytes = 8 * 1024 * 1024;  // queued per client
inline constexpr absl::Duration kControlRequestTimeout = absl::Seconds(5);
inline constexpr absl::Duration kControlSendTimeout = absl::Seconds(5);
inline constexpr int kMaxControlConnections = 128;
// The client side: connecting and writing a request wait at most this.
inline constexpr absl::Duration kControlConnectTimeout = absl::Seconds(2);

class ControlServer;

// One accepted control connection. The handler may keep it (to answer
// later, e.g. with progress) by holding the shared pointer; the server
// keeps it until its replies are written, and closes it when the peer
// hangs up (noticed on the event loop, so a departed follower leaves no
// descriptor behind).
class ControlConnection {
 public:
  ControlConnection(UniqueFd fd, pid_t peer_pid) : fd_(std::move(fd)), peer_pid_(peer_pid) {}
  ControlConnection(const ControlConnection&) = delete;
  ControlConnection& operator=(const ControlConnection&) = delete;
  ~ControlConnection();
  int fd() const { return fd_.get(); }
  pid_t peer_pid() const { return peer_pid_; }
  // Queues one JSON line; the event loop writes it without blocking. False
  // when the peer is gone or was dropped (its unread replies passed
  // kMaxControlPendingBytes, or stayed unread for kControlSendTimeout).
  bool Send(const nlohmann::json& message);
  // Further input from the peer goes to `on_readable` (which reads fd());
  // without one it is discarded, and the peer's end of input closes the
  // connection once its replies are written.
  void SetReader(std::function<void()> on_readable) { reader_ = std::move(on_readable); }
  void Close();
  bool closed() const { return !fd_.valid(); }

 private:
  friend class ControlServer;
  // Writes what the socket takes now; false when the connection failed.
  bool Flush();
  // Closes the connection with one log line saying why.
  void Drop(const std::string& why);
  bool pending() const { return sent_ < out_.size(); }

  UniqueFd fd_;
  pid_t peer_pid_;
  ControlServer* server_ = nullptr;  // null once the server is gone
  std::string request_;              // until the request line is complete
  bool request_done_ = false;
  bool input_ended_ = false;
  absl::Time accepted_at_;
  std::string out_;  // queued reply bytes; out_[0, sent_) are written
  size_t sent_ = 0;
  absl::Time pending_since_;  // when the oldest unsent byte was queued
  std::function<void()> reader_;
};

class ControlServer {
 public:
  using Handler = std::function<void(const nlohmann::json& request,
                                     std::shared_ptr<ControlConnection> connection)>;

  // Binds control.sock in `dir` (0600) and serves it on `proxy`'s loop.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(const StateDirectory& dir,
                                                              Proxy* proxy, Handler handler);
  ~ControlServer();
  // Stops serving and removes the socket if it is still ours. Connections
  // whose request was handled stay open, for their last words.
  void Stop();
  // After Stop, on the way out: writes what is queued for every client,
  // waiting at most `budget` in all (a client that does not read cannot
  // hold up the exit).
  void FlushPending(absl::Duration budget);

 private:
  friend class ControlConnection;
  ControlServer(Proxy* proxy, Handler handler) : proxy_(proxy), handler_(std::move(handler)) {}
  void Accept();
  void OnEvents(int fd, uint32_t events);
  void ReadRequest(const std::shared_ptr<ControlConnection>& connection);
  void DiscardInput(const std::shared_ptr<ControlConnection>& connection);
  // Watches for what `connection` waits on now (input, room to write).
  void UpdateWatch(ControlConnection* connection);
  // Forgets a connection that was closed or is no longer wanted by anyone.
  void Release(ControlConnection* connection);
  void CloseIfFinished(int fd);
  void Sweep();
  void ArmSweep();

  Proxy* proxy_;
  Handler handler_;
  UniqueFd listen_fd_;
  UniqueFd sweep_fd_;  // timerfd: deadlines are checked while clients are open
  bool sweep_armed_ = false;
  bool serving_ = false;
  std::string path_;
  ino_t inode_ = 0;
  std::map<int, std::shared_ptr<ControlConnection>> connections_;
  absl::Time last_refusal_log_ = absl::InfinitePast();
};

// Client side: connects to `socket_path` and checks that the server runs
// as our uid or root (so a planted socket cannot collect descriptors).
// Connecting waits at most `timeout` (a stopped gateway's full backlog).
absl::StatusOr<UniqueFd> ConnectControl(const std::string& socket_path,
                                        absl::Duration timeout = kControlConnectTimeout);
// Reads one JSON line, waiting at most `timeout`. A line longer than
// `max_bytes` is an error that says so (never a silently cut reply).
absl::StatusOr<nlohmann::json> ReadControlLine(int fd, absl::Duration timeout,
                                               size_t max_bytes = kMaxControlReplyBytes);
// Writes one JSON line, waiting at most `timeout` for room.
absl::Status WriteControlLine(int fd, const nlohmann::json& message,
                              absl::Duration timeout = kControlConnectTimeout);

}  // namespace gateway

#endif  // GATEWAY_OPS_CONTROL_SERVER_H_
