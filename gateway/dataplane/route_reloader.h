// RouteReloader: what SIGHUP does. The config is read and validated on a
// thread of its own — with the same LoadRoutes() start-up uses — so a slow
// or hostile file (a FIFO, a huge file, a hung filesystem) never blocks the
// event loop or the stop path; the parsed routes are handed to the event
// loop through an eventfd, and the loop installs them (Proxy::SetRoutes).
// Once a stop is latched, reloads are refused, logged and counted: a
// draining gateway must not re-open listeners or bind new routes.
#ifndef GATEWAY_DATAPLANE_ROUTE_RELOADER_H_
#define GATEWAY_DATAPLANE_ROUTE_RELOADER_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/dataplane/proxy.h"
#include "gateway/dataplane/routes.h"
#include "gateway/base/sys.h"
#include "gateway/dataplane/telemetry.h"

namespace gateway {

class RouteReloader {
 public:
  struct Options {
    std::string config_path;  // for log lines; empty: SIGHUP has nothing to reload
    // Reads and validates the routes (runs on the reload thread).
    std::function<absl::StatusOr<std::vector<Route>>()> load;
    // True once a stop is latched (any thread).
    std::function<bool()> stopping;
    Proxy* proxy = nullptr;  // the event loop that installs the routes
    // Installs the routes, on `proxy`'s thread (every worker's SetRoutes).
    std::function<absl::Status(const std::vector<Route>&)> install;
    Telemetry* telemetry = nullptr;
    // Test only: the reload thread waits this long before reading, like a
    // slow filesystem would make it.
    absl::Duration delay_for_test = absl::ZeroDuration();
  };

  // Call on the event loop's thread, before it runs: watches the hand-over
  // eventfd on `proxy` and starts the reload thread, which lives until the
  // process exits (a read stuck in the kernel must not hold up the exit).
  explicit RouteReloader(Options options);
  RouteReloader(const RouteReloader&) = delete;
  RouteReloader& operator=(const RouteReloader&) = delete;

  // Asks for a reload; any thread (the signal thread). Never blocks: a
  // request while one is being read is coalesced into one more read.
  void Request();

 private:
  void ReadRequested();    // the reload thread
  void InstallLoaded();    // the event loop's thread
  void RefuseStopping(absl::string_view when);

  Options options_;
  UniqueFd loaded_fd_;  // eventfd: routes are waiting in loaded_
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;                   // guarded by mu_
  std::optional<std::vector<Route>> loaded_;  // guarded by mu_
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_ROUTE_RELOADER_H_
