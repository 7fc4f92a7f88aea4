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
// "Down" (passive ejection, as Envoy's outlier detection): in a pool of two
// or more, an upstream whose connects fail kEjectAfterFailures times in a
// row is not picked for kEjectFor; after that it gets new connections
// again, and one connect that succeeds makes it up. A pool of one is never
// ejected: there is nowhere else to send the client. There are no active
// health checks yet.
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

struct UpstreamState {
  explicit UpstreamState(SocketAddress a) : address(a), name(a.ToString()) {}
  const SocketAddress address;
  const std::string name;
  std::atomic<int64_t> active{0};
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> connect_errors{0};
  std::atomic<int> consecutive_failures{0};
  std::atomic<int64_t> down_until_ns{0};  // passive ejection; 0: never ejected
  // Guarded by the pool's mutex:
  int weight = 1;
  bool backup = false;
  int64_t current_weight = 0;  // smooth round robin
  std::string last_change;     // "ejected after 3 connect failures in a row: …"
  absl::Time last_change_at = absl::InfinitePast();
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

  // [{address, weight, backup, up, active, total, connect_errors,
  //   last_change, last_change_at}], in configuration order.
  nlohmann::json StatusJson() const;
  // One line per upstream and metric family; `route` is the label value.
  struct Sample {
    std::string upstream;
    bool up;
    int64_t active, total, connect_errors;
  };
  std::vector<Sample> Samples() const;

 private:
  bool IsUp(const UpstreamState& upstream, int64_t now_ns) const;

  mutable std::mutex mu_;
  Balance balance_ = Balance::kRoundRobin;
  std::vector<UpstreamState*> members_;               // guarded by mu_
  std::deque<std::unique_ptr<UpstreamState>> known_;  // guarded by mu_; stable addresses
  size_t next_tie_ = 0;                               // guarded by mu_ (least_conn)
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_UPSTREAM_POOL_H_
