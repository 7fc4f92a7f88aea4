// The data plane: one epoll loop (edge-triggered) that accepts on every
// route's listener, connects to the upstream without blocking, and relays
// both directions with splice(2) through pooled pipes. Half-close is
// propagated (shutdown(SHUT_WR) once a side's data is delivered);
// backpressure is the pipe: a direction reads only when its pipe is empty,
// so no connection buffers more than one pipe per direction.
//
// The loop also watches a few other descriptors (the stop controller's
// wake-up, the reload trigger, the control socket) through Watch().
//
// With several workers (workers.h) each worker thread runs its own Proxy;
// they share each listening socket (every worker holds a duplicate of it in
// its own epoll set with EPOLLEXCLUSIVE, level-triggered, and accepts a
// bounded batch per wake-up, so a burst spreads over the workers). A Proxy
// is used on its loop's thread only, except where a member says otherwise.
#ifndef GATEWAY_DATAPLANE_PROXY_H_
#define GATEWAY_DATAPLANE_PROXY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/dataplane/routes.h"
#include "gateway/base/sys.h"
#include "gateway/dataplane/telemetry.h"

namespace gateway {

// Something registered with the event loop.
class Watcher {
 public:
  virtual ~Watcher() = default;
  virtual void OnEvents(uint32_t events) = 0;
};

// Per-worker counters (Telemetry owns them; the worker writes them).
struct WorkerStats;
struct RouteStats;
class AccessLog;
class UpstreamPool;

class Proxy {
 public:
  struct Options {
    // Listening sockets shared with other workers: EPOLLEXCLUSIVE,
    // level-triggered, a bounded accept batch. False: one worker, edge-
    // triggered, accept until the queue is empty.
    bool shared_listeners = false;
    WorkerStats* worker_stats = nullptr;  // may be null
    AccessLog* access_log = nullptr;      // may be null: no access log
  };
  explicit Proxy(Telemetry* telemetry) : Proxy(telemetry, Options()) {}
  Proxy(Telemetry* telemetry, Options options);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Installs `routes`: keeps listeners whose address is unchanged (updating
  // their upstream), takes a listener for a new address from `inherited`
  // (keyed by address, e.g. from a predecessor or socket activation) or
  // binds it, and closes listeners no longer wanted. All or nothing: on
  // error nothing changes. Unavailable when an address is in use;
  // FailedPrecondition once StopAccepting() ran (a draining proxy never
  // listens again).
  absl::Status SetRoutes(const std::vector<Route>& routes,
                         std::map<std::string, UniqueFd>* inherited = nullptr);

  // Watches `fd` for readability (level-triggered); `on_readable` runs on
  // the loop's thread. The fd stays owned by the caller.
  void Watch(int fd, std::function<void()> on_readable);
  // Like Watch, for `events` (EPOLLIN, EPOLLOUT, EPOLLRDHUP, ...;
  // level-triggered); `on_events` gets what happened. ChangeWatch replaces
  // the events of a watched fd.
  void WatchEvents(int fd, uint32_t events, std::function<void(uint32_t)> on_events);
  void ChangeWatch(int fd, uint32_t events);
  void Unwatch(int fd);

  // Runs the loop until `done()` holds (checked after every wake-up) or
  // `deadline` passes; wakes at least every `tick` to call `on_tick`.
  void RunUntil(const std::function<bool()>& done, absl::Time deadline = absl::InfiniteFuture(),
                absl::Duration tick = absl::Seconds(1), const std::function<void()>& on_tick = {});

  // Stops accepting: closes this process's listening descriptors (a
  // successor holding duplicates keeps accepting on them).
  void StopAccepting();
  // Closes every open connection; returns how many were open.
  int64_t CloseAllConnections();
  // Any thread.
  int64_t active_connections() const { return active_count_.load(std::memory_order_relaxed); }
  // Runs `task` on this loop's thread at its next wake-up; any thread.
  void Post(std::function<void()> task);
  // When the loop last went round (thread-safe): a stuck loop stops
  // advancing it, which the systemd watchdog uses as its health check.
  absl::Time last_iteration() const { return absl::FromUnixNanos(last_iteration_ns_.load()); }

  // Listening descriptors by address, for handing to a successor.
  std::vector<std::pair<std::string, int>> ListenerFds() const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  class Listener;
  class Connection;
  class PendingHeader;
  struct Pipe {
    int read_fd = -1;
    int write_fd = -1;
  };
  friend class Listener;
  friend class Connection;
  friend class PendingHeader;

  void Register(int fd, uint32_t events, Watcher* watcher);
  void Deregister(int fd);
  void AcceptFrom(Listener* listener);
  // Picks an upstream and starts relaying for an accepted client whose
  // route slot is taken; false when accepting must pause (out of fds).
  // `destination`: what the client connected to (a PROXY header's, or
  // unset: the socket's own).
  bool StartRelay(const Route& route, RouteStats* stats, UpstreamPool* pool, UniqueFd client,
                  const SocketAddress& client_address, const SocketAddress& destination);
  // An access-log line for a client closed before any relay.
  void LogRefused(const Route& route, const SocketAddress& client, const char* ended,
                  const std::string& upstream = "");
  void ClosePending(PendingHeader* pending);
  void ArmListener(Listener* listener);
  void DisarmListener(Listener* listener);
  void PauseAccepting(absl::Time until);
  void ResumeAccepting();
  void Close(Connection* connection);
  std::optional<Pipe> AcquirePipe();
  void ReleasePipe(Pipe pipe);
  void ExpireConnects(absl::Time now);
  void CloseIdle(absl::Time now);
  void RunPosted();

  Telemetry* telemetry_;
  const Options options_;
  UniqueFd epoll_fd_;
  UniqueFd posted_fd_;  // eventfd: tasks wait in posted_
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;  // guarded by posted_mu_
  std::atomic<int64_t> active_count_{0};
  absl::Time loop_now_ = absl::Now();  // after each epoll_wait: when bytes last moved
  absl::Time next_idle_sweep_ = absl::InfinitePast();
  std::vector<Route> routes_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::set<Connection*> connections_;
  std::vector<std::unique_ptr<Connection>> closed_;  // freed after each batch
  std::set<std::pair<absl::Time, Connection*>> connect_deadlines_;
  // Clients of accept_proxy routes whose header is not complete yet.
  std::set<PendingHeader*> pending_;
  absl::Time last_header_error_log_ = absl::InfinitePast();
  std::set<std::pair<absl::Time, PendingHeader*>> header_deadlines_;
  std::vector<Pipe> pipe_pool_;
  std::map<int, std::unique_ptr<Watcher>> watched_;
  // Listeners and watchers removed during a batch of events, freed after it.
  std::vector<std::unique_ptr<Watcher>> retired_;
  std::optional<absl::Time> accept_paused_until_;
  bool stopped_accepting_ = false;
  std::atomic<int64_t> last_iteration_ns_{absl::GetCurrentTimeNanos()};
  absl::Time last_accept_error_log_ = absl::InfinitePast();
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_PROXY_H_
