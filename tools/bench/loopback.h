// What every benchmark tool shares: the loopback-only rule for addresses
// (load is only ever sent to 127.0.0.0/8 or ::1), a monotonic clock in
// nanoseconds, and a one-line fatal error for bad flags.
#ifndef TOOLS_BENCH_LOOPBACK_H_
#define TOOLS_BENCH_LOOPBACK_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/base/net.h"

namespace gateway::bench {

// Parses "127.0.0.1:PORT" or "[::1]:PORT"; refuses any address outside
// 127.0.0.0/8 and ::1 (InvalidArgument naming the address).
absl::StatusOr<SocketAddress> ParseLoopbackAddress(const std::string& text);

// CLOCK_MONOTONIC in nanoseconds.
int64_t NowNs();

// Prints "<tool>: <message>" to stderr and exits 2 (usage error).
[[noreturn]] void DieUsage(const std::string& tool, const std::string& message);

// Checks a numeric flag lies within [lo, hi]; dies with a usage error
// naming the flag otherwise. Every loop in the tools is bounded by these.
void CheckRange(const std::string& tool, const char* flag, double value, double lo, double hi);

}  // namespace gateway::bench

#endif  // TOOLS_BENCH_LOOPBACK_H_
