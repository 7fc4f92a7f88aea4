// See loopback.h.
#include "tools/bench/loopback.h"

#include <netinet/in.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace gateway::bench {

absl::StatusOr<SocketAddress> ParseLoopbackAddress(const std::string& text) {
  absl::StatusOr<SocketAddress> address = SocketAddress::Parse(text);
  if (!address.ok()) return address.status();
  bool loopback = false;
  if (address->family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address->storage);
    loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (address->family() == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address->storage);
    loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
  }
  if (!loopback) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing ", text, ": benchmark traffic goes to loopback only (127.0.0.0/8 or [::1])"));
  }
  return address;
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void DieUsage(const std::string& tool, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", tool.c_str(), message.c_str());
  std::exit(2);
}

void CheckRange(const std::string& tool, const char* flag, double value, double lo, double hi) {
  if (value < lo || value > hi) {
    DieUsage(tool, absl::StrCat("--", flag, "=", value, " is out of range [", lo, ", ", hi, "]"));
  }
}

}  // namespace gateway::bench
