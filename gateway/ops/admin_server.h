// The admin HTTP server (SPEC 3): /healthz, /readyz (503 unless serving),
// /status (JSON) and /metrics (Prometheus text). Built on GNU
// libmicrohttpd, driven by a thread of its own; handlers only read
// Telemetry. The listening socket is ours, so it can be inherited by a
// successor during a replacement.
//
// No client can starve the probes (docs/configuration.md, "Admin
// server"): each request must arrive whole within kAdminRequestTimeout
// (however often bytes trickle in), one client address holds at most
// kAdminConnectionsPerAddress connections, and the newest connections
// always find room: when all but kAdminProbeReserve slots are taken, the
// connection whose request has been incomplete longest is closed.
#ifndef GATEWAY_OPS_ADMIN_SERVER_H_
#define GATEWAY_OPS_ADMIN_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/base/sys.h"
#include "gateway/dataplane/telemetry.h"

struct MHD_Connection;
struct MHD_Daemon;

namespace gateway {

inline constexpr unsigned kAdminConnectionLimit = 256;
inline constexpr unsigned kAdminProbeReserve = 32;
inline constexpr unsigned kAdminConnectionsPerAddress = 32;
inline constexpr absl::Duration kAdminRequestTimeout = absl::Seconds(3);
inline constexpr absl::Duration kAdminIdleTimeout = absl::Seconds(3);
inline constexpr absl::Duration kAdminConnectionLifetime = absl::Seconds(30);

class AdminServer {
 public:
  // Serves on `listener` (already bound and listening).
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(UniqueFd listener,
                                                            const Telemetry* telemetry);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The listening descriptor (for handing to a successor).
  int listen_fd() const { return listen_fd_; }
  // Stops accepting new requests (a successor serves them now).
  void StopAccepting();

 private:
  // What the server knows of one open connection (its own thread only).
  struct Tracked {
    absl::Time accepted_at;
    absl::Time request_started_at;  // accept, or the previous response
    bool request_complete = false;
    bool closing = false;  // shut down by us; libmicrohttpd closes it next
  };

  explicit AdminServer(const Telemetry* telemetry) : telemetry_(telemetry) {}
  void Serve();
  // Closes connections past their deadlines.
  void Sweep();
  // Makes room for new connections while the server is nearly full.
  void KeepProbeReserve();
  void Evict(MHD_Connection* connection, Tracked& tracked);
  void LogEvictions();

  // libmicrohttpd's callbacks (admin_server.cc), all on thread_.
  friend struct AdminCallbacks;
  void ConnectionStarted(MHD_Connection* connection);
  void ConnectionClosed(MHD_Connection* connection);
  void RequestArrived(MHD_Connection* connection);
  void RequestDone(MHD_Connection* connection);

  const Telemetry* telemetry_;
  MHD_Daemon* daemon_ = nullptr;
  int listen_fd_ = -1;
  int quiesced_fd_ = -1;
  UniqueFd wake_fd_;  // eventfd: StopAccepting and the destructor wake Serve
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable quiesced_cv_;
  bool quiesce_requested_ = false;  // guarded by mu_
  bool quiesced_ = false;           // guarded by mu_
  std::map<MHD_Connection*, Tracked> tracked_;
  int64_t evicted_slow_ = 0;  // since the last log line
  int64_t evicted_for_room_ = 0;
  int64_t evicted_old_ = 0;
  absl::Time last_eviction_log_ = absl::InfinitePast();
};

}  // namespace gateway

#endif  // GATEWAY_OPS_ADMIN_SERVER_H_
