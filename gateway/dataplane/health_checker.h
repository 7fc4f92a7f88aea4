// HealthChecker: the active health checks of every pooled upstream, on one
// thread of its own, so a check never costs a relay loop anything and runs
// once per upstream however many workers there are. Each upstream of a
// route with a `health_check` is probed every `interval` (the first probe
// at once, then spread by the upstream's position so a large pool does not
// connect all at once), or every `fast_interval` while it is changing state
// (UpstreamPool::CheckDone says so), each probe bounded by `timeout`:
//   TCP   connect; then, when set, send `send` and read until the reply
//         contains `expect` (at most kMaxCheckReply bytes, or the peer's
//         close, fails).
//   HTTP  connect, "GET path HTTP/1.0", and the status line's code must be
//         within the configured range.
// The outcome goes to UpstreamPool::CheckDone, which applies rise/fall.
#ifndef GATEWAY_DATAPLANE_HEALTH_CHECKER_H_
#define GATEWAY_DATAPLANE_HEALTH_CHECKER_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gateway/base/sys.h"
#include "gateway/dataplane/upstream_pool.h"

namespace gateway {

inline constexpr size_t kMaxCheckReply = 4096;

class HealthChecker {
 public:
  // `pools` lists the pools to check now (called on every round; the pools
  // outlive the checker).
  explicit HealthChecker(std::function<std::vector<UpstreamPool*>()> pools);
  ~HealthChecker();  // Stop()
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  absl::Status Start();
  // Returns at once: probes in flight are abandoned (their sockets closed).
  void Stop();

  int64_t probes() const { return probes_.load(); }

 private:
  void Run();

  std::function<std::vector<UpstreamPool*>()> pools_;
  UniqueFd wake_;  // eventfd: Stop()
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> probes_{0};
  std::thread thread_;
};

// The request an HTTP check sends.
std::string HttpCheckRequest(const HealthCheck& check, const SocketAddress& upstream);
// The verdict on what a check has read so far: nullopt while undecided
// (need more), "" for a pass, else why it failed. `closed`: the peer
// closed after `reply`.
std::optional<std::string> JudgeCheckReply(const HealthCheck& check, absl::string_view reply,
                                           bool closed);

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_HEALTH_CHECKER_H_
