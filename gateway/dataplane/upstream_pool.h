// UpstreamPool: a route's upstreams, how a new connection picks one, and
// their state, shared by every worker (each call takes the pool's mutex
// or touches only atomics) and kept across SIGHUP for the addresses that
// stay (Update).
//
// Balancing (Route::balance):
//   round_robin  smooth weighted round robin (nginx's): over any window of
//                sum(weights) picks, each upstream gets exactly its weight,
//                interleaved rather than in runs.
//   least_conn   fewest active connections relative to weight, across all
//                workers (the counts are shared); ties in turn.
//   hash         weighted rendezvous (highest random weight) hashing of the
//                client's IP address: a client keeps its upstream while it
//                is up, and adding or removing one of N upstreams moves only
//                the clients that hash to it (about 1/N), with no ring to
//                build or keep in memory.
// Backups are picked only while no primary is up.
//
// An upstream gets new connections while it is up and its admin state is
// `enabled` (gatewayctl upstream drain|disable|enable): `drain` and
// `disabled` take no new connections and let the open ones finish;
// `disabled` also pauses its health checks (HAProxy's maint).
//
// Up or down:
//  - With the route's health_check (health_checker.h): the checks decide
//    (`fall` failures in a row take it down, `rise` successes bring it
//    back; before its first check succeeds, one failure takes it down, as
//    in HAProxy). kEjectAfterFailures connect failures of client
//    connections in a row also take it down (passive ejection, Envoy's
//    outlier detection), until `rise` checks succeed.
//  - Without: passive ejection alone, in a pool of two or more: it is not
//    picked for kEjectFor, then gets connections again; one connect that
//    succeeds makes it up. A pool of one is never ejected passively: there
//    is nowhere else to send the client.
#ifndef GATEWAY_DATAPLANE_UPSTREAM_POOL_H_
#define GATEWAY_DATAPLANE_UPSTREAM_POOL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/base/net.h"
#include "gateway/dataplane/routes.h"
#include "nlohmann/json.hpp"

namespace gateway {

inline constexpr int kEjectAfterFailures = 3;
inline constexpr absl::Duration kEjectFor = absl::Seconds(10);

enum class AdminState { kEnabled, kDrain, kDisabled };
const char* AdminStateName(AdminState state);

// What made an upstream's state change last: its health checks, client
// connects (passive ejection, or the connect that ends it), or gatewayctl.
enum class ChangeCause { kNone, kChecks, kConnects, kAdmin };
const char* ChangeCauseName(ChangeCause cause);  // "checks", "connects", "admin"

struct UpstreamState {
  explicit UpstreamState(SocketAddress a) : address(a), name(a.ToString()) {}
  const SocketAddress address;
  const std::string name;
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> connect_errors{0};
  std::atomic<int> consecutive_failures{0};
  std::atomic<int64_t> down_until_ns{0};  // passive ejection; 0: never ejected
  std::atomic<AdminState> admin{AdminState::kEnabled};
  std::atomic<bool> checked_down{false};   // the health checks say down
  std::atomic<int64_t> check_latency_us{-1};  // the last check's; -1: none yet
  // Guarded by the pool's mutex:
  int weight = 1;
  bool backup = false;
  int64_t current_weight = 0;  // smooth round robin
  std::string last_change;     // "down: 3 connect failures in a row (…)"
  absl::Time last_change_at = absl::InfinitePast();
  ChangeCause last_change_cause = ChangeCause::kNone;
  int check_successes = 0;     // in a row
  int check_failures = 0;      // in a row
  bool check_succeeded = false;  // ever (before: one failure takes it down)
  std::string last_check;      // "ok", or why the last check failed
};

// What the health checker needs for one upstream.
struct CheckTarget {
  UpstreamState* upstream;
  HealthCheck check;
};

class UpstreamPool {
 public:
  explicit UpstreamPool(const Route& route);
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // The route's upstreams, balance and weights now; an address that stays
  // keeps its counters and state.
  void Update(const Route& route);

  // The upstream for a new connection from `client`, never `exclude` (the
  // one that just failed); nullptr when none is up. Counts it as active.
  UpstreamState* Pick(const SocketAddress& client, const UpstreamState* exclude = nullptr);
  void Release(UpstreamState* upstream) { upstream->active.fetch_sub(1); }
  void Connected(UpstreamState* upstream);
  void ConnectFailed(UpstreamState* upstream, absl::string_view why);

  // The upstreams the health checker probes now (checks configured, not
  // disabled).
  std::vector<CheckTarget> CheckTargets() const;
  // A check's outcome: `error` empty for a success. True when the upstream
  // is now changing state (down with checks in a row passing, or up with
  // checks in a row failing): its next check is due after `fast_interval`.
  bool CheckDone(UpstreamState* upstream, absl::Duration latency, const std::string& error);

  // Sets the admin state of the member `address`; false when there is none.
  bool SetAdmin(absl::string_view address, AdminState state, nlohmann::json* now);
  // The members' admin and health state, for the successor of a
  // replacement: {address: {admin, checked_down, check_succeeded,
  // down_for_ms}}; Inherit applies it to the members that match.
  nlohmann::json ExportState() const;
  void Inherit(const nlohmann::json& state);
  // Some member is up (a route with ready_requires_upstream).
  bool AnyUp() const;

  // [{address, weight, backup, up, admin, active, total, connect_errors,
  //   check, last_change, last_change_at}], in configuration order.
  nlohmann::json StatusJson() const;
  // One line per upstream and metric family; `route` is the label value.
  struct Sample {
    std::string upstream;
    bool up;
    AdminState admin;
    int64_t active, total, connect_errors, check_latency_us;
    ChangeCause last_change_cause;  // kNone: never changed (or inherited without a cause)
    absl::Time last_change_at;
  };
  std::vector<Sample> Samples() const;

 private:
  bool IsUp(const UpstreamState& upstream, int64_t now_ns) const;  // healthy
  bool Usable(const UpstreamState& upstream, int64_t now_ns) const;  // up and enabled
  nlohmann::json MemberJson(const UpstreamState& upstream, int64_t now_ns) const;
  void Changed(UpstreamState* upstream, ChangeCause cause, std::string why);

  mutable std::mutex mu_;
  Balance balance_ = Balance::kRoundRobin;
  std::string route_name_;                            // guarded by mu_ (logs)
  HealthCheck check_;                                 // guarded by mu_
  std::vector<UpstreamState*> members_;               // guarded by mu_
  std::deque<std::unique_ptr<UpstreamState>> known_;  // guarded by mu_; stable addresses
  size_t next_tie_ = 0;                               // guarded by mu_ (least_conn)
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_UPSTREAM_POOL_H_
