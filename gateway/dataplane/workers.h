// Workers: N event loops on N threads (--workers), each a Proxy with its own
// epoll set and its own connections. Worker 0 is the caller's thread: its
// loop also runs the control socket, the reload hand-over and the stop
// controller's wake-up (Proxy::Watch). Workers 1..N-1 run on threads of
// their own.
//
// Distribution: one listening socket per address, shared. Worker 0 binds
// it (or inherits it from a predecessor or socket activation); every other
// worker registers a duplicate descriptor of the same socket in its own
// epoll set with EPOLLEXCLUSIVE, so an arriving connection wakes one idle
// worker, and accepts at most a small batch per wake-up. There is one
// accept queue per address, as with one worker: nothing queued is lost on a
// replacement (the successor inherits the socket, whatever its number of
// workers), on SIGHUP for routes that stay, or when a worker closes its
// duplicate. docs/architecture.md says why this and not SO_REUSEPORT.
//
// The stop path does not change: the stop controller's one thread latches
// the verdict; the caller drains by waiting on worker 0's loop until
// active_connections() (the sum over workers) is 0.
#ifndef GATEWAY_DATAPLANE_WORKERS_H_
#define GATEWAY_DATAPLANE_WORKERS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/base/sys.h"
#include "gateway/dataplane/proxy.h"
#include "gateway/dataplane/routes.h"
#include "gateway/dataplane/telemetry.h"

namespace gateway {

class Workers {
 public:
  // `count` >= 1. Nothing runs until Start().
  // `access_log` may be null (no --access_log); it outlives the workers.
  Workers(Telemetry* telemetry, int count, AccessLog* access_log = nullptr);
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  int count() const { return static_cast<int>(proxies_.size()); }
  // Worker 0, driven by the caller's thread (RunUntil, Watch, ...).
  Proxy& main() { return *proxies_[0]; }

  // Installs `routes` in every worker (Proxy::SetRoutes semantics): worker 0
  // first, with `inherited`, then each other worker with duplicates of
  // worker 0's listening sockets, on its own thread. Call on worker 0's
  // thread. A failure in worker 0 changes nothing; one in another worker
  // (only a failed dup(2), out of descriptors) is returned and that worker
  // keeps its previous routes.
  absl::Status SetRoutes(const std::vector<Route>& routes,
                         std::map<std::string, UniqueFd>* inherited = nullptr);
  // Starts the threads of workers 1..N-1.
  void Start();

  // Every worker closes its listening descriptors (worker 0's thread).
  void StopAccepting();
  // Every worker closes its connections; returns how many were open.
  int64_t CloseAllConnections();
  // The sum over workers; any thread.
  int64_t active_connections() const;
  // The least recent loop iteration of any worker: a wedged worker holds
  // it back, which the watchdog sees. Any thread.
  absl::Time oldest_iteration() const;
  // A worker thread (1..N-1) whose loop has not gone round for `limit`,
  // if any. Any thread.
  std::optional<int> WedgedWorker(absl::Duration limit) const;

 private:
  // Runs `task` on worker `index`'s thread and waits for it, at most 5 s
  // (false then, logged: the worker is wedged, and the stop path must not
  // wait for it); inline when that worker's loop is not running (index 0,
  // or before Start()).
  bool RunOn(int index, std::function<void(Proxy*)> task);

  std::vector<std::unique_ptr<Proxy>> proxies_;
  std::vector<std::thread> threads_;
  std::atomic<bool> quit_{false};
  bool started_ = false;
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_WORKERS_H_
