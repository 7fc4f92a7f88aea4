// Telemetry: the counters the data plane updates (lock-free) and the state
// the admin server reports, rendered as /status JSON and /metrics in the
// Prometheus text format. Written by the event loop, read by the admin
// server's thread.
#ifndef GATEWAY_DATAPLANE_TELEMETRY_H_
#define GATEWAY_DATAPLANE_TELEMETRY_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gateway/dataplane/access_log.h"
#include "gateway/dataplane/routes.h"
#include "gateway/dataplane/upstream_pool.h"
#include "gateway/stop/stop_context.h"
#include "gateway/stop/stop_history_metrics.h"
#include "gateway/stop/stop_record.h"
#include "nlohmann/json.hpp"

namespace gateway {

struct RouteStats {
  explicit RouteStats(std::string route_name) : name(std::move(route_name)) {}
  const std::string name;
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> bytes_to_upstream{0};
  std::atomic<int64_t> bytes_to_client{0};
  std::atomic<int64_t> upstream_connect_errors{0};
  std::atomic<int64_t> upstream_timeouts{0};
  std::atomic<int64_t> upstream_retries{0};  // connects tried again on another upstream
  std::atomic<int64_t> no_upstream{0};       // clients closed at once: no upstream up
  std::atomic<int64_t> over_limit{0};        // clients closed at once: max_connections
  std::atomic<int64_t> idle_closed{0};       // connections closed by idle_timeout
  std::atomic<int64_t> proxy_header_errors{0};  // accept_proxy: bad, slow or missing header
};

// One worker's connections (--workers): written by its loop, so an
// imbalance between workers is visible in /status and /metrics.
struct WorkerStats {
  explicit WorkerStats(int worker_index) : index(worker_index) {}
  const int index;
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> total{0};
};

class Telemetry {
 public:
  struct Identity {
    pid_t pid = 0;
    absl::Time started_at;
    std::string state_dir;
    std::vector<std::string> detectors;
    PreviousRun previous;
    nlohmann::json previous_record;  // last-shutdown.json found at start-up
    // The state directory's stop history for /metrics; none: not exported.
    StopHistoryMetrics* stop_history = nullptr;
  };

  explicit Telemetry(Identity identity) : identity_(std::move(identity)) {}

  // Stats live as long as the process, so a route removed by a reload keeps
  // its counters (Prometheus counters must not go back).
  RouteStats* StatsFor(const std::string& route_name);
  // The route's upstream pool, created on first use and updated to
  // `route` (an address that stays keeps its state); lives as long as the
  // process, shared by every worker.
  UpstreamPool* PoolFor(const Route& route);

  void SetRoutes(const std::vector<Route>& routes);
  // The --access_log, for its counters in /metrics; may be null.
  void SetAccessLog(const AccessLog* log) { access_log_ = log; }
  // A worker's counters, created on first use; they live as long as the
  // process.
  WorkerStats* StatsForWorker(int index);
  void SetPhase(Phase phase) { phase_.store(phase); }
  Phase phase() const { return phase_.load(); }
  void SetStopped(StopClass stop_class, const std::string& detector);

  std::atomic<int64_t> accept_errors{0};
  std::atomic<int64_t> closed_at_deadline{0};
  std::atomic<int64_t> reloads_ok{0};
  std::atomic<int64_t> reloads_failed{0};
  std::atomic<int64_t> reloads_refused_stopping{0};  // SIGHUP after a stop was latched
  std::atomic<int64_t> replacements_started{0};
  std::atomic<int64_t> replacements_failed{0};

  int64_t ActiveConnections() const;
  // Ready to take traffic: serving (not starting, not draining), and every
  // route with ready_requires_upstream has an upstream up.
  bool Ready() const { return NotReadyBecause().empty(); }
  // Why not ready ("draining", "route web has no upstream up"), or "".
  std::string NotReadyBecause() const;

  // The pools of the routes in force (for the health checker).
  std::vector<UpstreamPool*> CurrentPools() const;
  // gatewayctl upstream: {"cmd":"upstream","action":"list"} or
  // {"cmd":"upstream","action":"drain|disable|enable","route":R,"address":A};
  // the reply to send ({"ok":..., ...}).
  nlohmann::json UpstreamCommand(const nlohmann::json& request);
  // Every pool's admin and health state, by route, for a successor; and
  // the successor's side, applied to the routes it has.
  nlohmann::json ExportUpstreamState() const;
  void InheritUpstreamState(const nlohmann::json& state);

  nlohmann::json StatusJson() const;
  std::string PrometheusText() const;

 private:
  const Identity identity_;
  const AccessLog* access_log_ = nullptr;  // set before the admin server starts
  std::atomic<Phase> phase_{Phase::kStarting};
  mutable std::mutex mu_;
  std::deque<RouteStats> stats_;      // guarded by mu_ (deque: stable addresses)
  std::vector<Route> routes_;         // guarded by mu_
  std::deque<WorkerStats> workers_;   // guarded by mu_; by index
  std::map<std::string, std::unique_ptr<UpstreamPool>> pools_;  // guarded by mu_; by route name
  std::string stop_class_;            // guarded by mu_; empty while running
  std::string stop_detector_;         // guarded by mu_
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_TELEMETRY_H_
