// The admin HTTP server (SPEC 3): /healthz, /readyz (503 unless serving),
// /status (JSON) and /metrics (Prometheus text). Built on GNU
// libmicrohttpd, which runs it on its own thread; handlers only read
// Telemetry. The listening socket is ours, so it can be inherited by a
// successor during a replacement.
#ifndef GATEWAY_OPS_ADMIN_SERVER_H_
#define GATEWAY_OPS_ADMIN_SERVER_H_

#include <string>

#include "absl/status/statusor.h"
#include "gateway/base/sys.h"
#include "gateway/dataplane/telemetry.h"

struct MHD_Daemon;

namespace gateway {

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
  AdminServer(const Telemetry* telemetry) : telemetry_(telemetry) {}
  const Telemetry* telemetry_;
  MHD_Daemon* daemon_ = nullptr;
  int listen_fd_ = -1;
  int quiesced_fd_ = -1;
};

}  // namespace gateway

#endif  // GATEWAY_OPS_ADMIN_SERVER_H_
