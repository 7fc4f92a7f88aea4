// Routes: which listen address relays to which upstream. They come from
// repeated or comma-separated --route=LISTEN=UPSTREAM flags and from a JSON
// --config file, which SIGHUP re-reads.
//
// Config file format:
//   {"routes": [{"name": "web", "listen": "127.0.0.1:8080",
//                "upstream": "127.0.0.1:9000", "connect_timeout": "5s"}]}
#ifndef GATEWAY_DATAPLANE_ROUTES_H_
#define GATEWAY_DATAPLANE_ROUTES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/base/net.h"

namespace gateway {

inline constexpr absl::Duration kDefaultConnectTimeout = absl::Seconds(5);
// The largest config file read (docs/configuration.md); a config of a few
// thousand routes is well under it.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

inline constexpr int kDefaultConnectRetries = 2;
inline constexpr int kMaxUpstreamWeight = 256;

// One member of a route's upstream pool.
struct UpstreamSpec {
  SocketAddress address;
  int weight = 1;       // 1..kMaxUpstreamWeight
  bool backup = false;  // serves only while no primary is up
};

// Active health checks of every upstream of a route (health_checker.h),
// HAProxy's `check inter rise fall` with `timeout check`.
struct HealthCheck {
  bool enabled = false;
  absl::Duration interval = absl::Seconds(2);
  absl::Duration timeout = absl::Seconds(1);  // <= interval
  // Between checks while an upstream is changing state: a down one whose
  // checks have begun to pass, an up one whose checks have begun to fail
  // (HAProxy's `fastinter`). Default: interval / 4, at least 10ms.
  absl::Duration fast_interval = absl::Milliseconds(500);  // <= interval
  int rise = 2;  // successes in a row that bring a down upstream up
  int fall = 3;  // failures in a row that take an up upstream down
  // TCP check: connect; then, when set, send `send` and read until the
  // reply contains `expect` (both optional, byte strings).
  std::string send;
  std::string expect;
  // HTTP check (when http_path is set): "GET http_path HTTP/1.0" with
  // Host: http_host; the status must be in [status_min, status_max].
  std::string http_path;
  std::string http_host;
  int status_min = 200;
  int status_max = 399;
};

// How a new connection picks its upstream (upstream_pool.h).
enum class Balance { kRoundRobin, kLeastConn, kHash };
const char* BalanceName(Balance balance);

struct Route {
  std::string name;  // "web", or the listen address when unnamed
  SocketAddress listen;
  SocketAddress upstream;               // upstreams[0].address
  std::vector<UpstreamSpec> upstreams;  // never empty
  Balance balance = Balance::kRoundRobin;
  // Further upstreams tried when a connect is refused, reset or times out
  // (before any byte is relayed); never the same one twice in a row.
  int connect_retries = kDefaultConnectRetries;
  absl::Duration connect_timeout = kDefaultConnectTimeout;
  // Open connections at most (all workers together); beyond it a new
  // client is closed at once and counted. 0: no limit.
  int64_t max_connections = 0;
  // A connection with no byte either way for this long is closed and
  // counted. Zero: never.
  absl::Duration idle_timeout = absl::ZeroDuration();
  HealthCheck health_check;
  // PROXY protocol (proxy_protocol.h): the header sent first to the
  // upstream ("v1", "v2"; none by default), and whether clients must start
  // with one (the address it carries is the client's for balancing, limits
  // and logs). A header not complete within proxy_header_timeout, or
  // malformed, closes the client and is counted.
  enum class SendProxy { kNone, kV1, kV2 } send_proxy = SendProxy::kNone;
  bool accept_proxy = false;
  absl::Duration proxy_header_timeout = absl::Seconds(3);
  // /readyz fails while no upstream of this route is up (a load balancer
  // in front then stops sending us this route's clients).
  bool ready_requires_upstream = false;
};

// Parses "127.0.0.1:8080=127.0.0.1:9000,[::1]:8443=[::1]:9443".
absl::StatusOr<std::vector<Route>> ParseRouteFlag(const std::string& text);
// Parses the JSON config text; `origin` names it in error messages.
absl::StatusOr<std::vector<Route>> ParseRouteConfig(const std::string& json,
                                                    const std::string& origin);
// Reads and parses the config file; refuses a file that is not a regular
// file or is larger than kMaxConfigBytes without reading it (a FIFO or a
// huge file must not stall whoever loads it).
absl::StatusOr<std::vector<Route>> LoadRouteConfig(const std::string& path);
// The routes of --route and --config together: the one validation that
// start-up and SIGHUP both run (and a future `gateway --check`).
absl::StatusOr<std::vector<Route>> LoadRoutes(const std::string& route_flag,
                                              const std::string& config_path);
// Fails on two routes with the same name or listen address.
absl::Status CheckRoutesAreDistinct(const std::vector<Route>& routes);

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_ROUTES_H_
