// See upstream_pool.h.
#include "gateway/dataplane/upstream_pool.h"

#include <netinet/in.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "glog/logging.h"

namespace gateway {
namespace {

// FNV-1a, then a 64-bit finaliser (splitmix64): cheap, and good enough to
// spread clients evenly over rendezvous scores.
uint64_t Hash(absl::string_view a, absl::string_view b) {
  uint64_t h = 1469598103934665603ULL;
  for (absl::string_view part : {a, absl::string_view("\0", 1), b}) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

// The client's IP address bytes (not its port): one client host, one
// upstream.
std::string ClientKey(const SocketAddress& client) {
  if (client.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&client.storage);
    return std::string(reinterpret_cast<const char*>(&in->sin_addr), sizeof in->sin_addr);
  }
  if (client.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&client.storage);
    return std::string(reinterpret_cast<const char*>(&in6->sin6_addr), sizeof in6->sin6_addr);
  }
  return "";
}

}  // namespace

UpstreamPool::UpstreamPool(const Route& route) { Update(route); }

void UpstreamPool::Update(const Route& route) {
  std::lock_guard<std::mutex> lock(mu_);
  balance_ = route.balance;
  members_.clear();
  for (const UpstreamSpec& spec : route.upstreams) {
    std::string name = spec.address.ToString();
    UpstreamState* state = nullptr;
    for (auto& known : known_) {
      if (known->name == name) state = known.get();
    }
    if (state == nullptr) {
      known_.push_back(std::make_unique<UpstreamState>(spec.address));
      state = known_.back().get();
    }
    state->weight = spec.weight;
    state->backup = spec.backup;
    state->current_weight = 0;
    members_.push_back(state);
  }
}

bool UpstreamPool::IsUp(const UpstreamState& upstream, int64_t now_ns) const {
  return members_.size() < 2 || upstream.down_until_ns.load() <= now_ns;
}

UpstreamState* UpstreamPool::Pick(const SocketAddress& client, const UpstreamState* exclude) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  std::vector<UpstreamState*> candidates;
  for (bool backups : {false, true}) {
    for (UpstreamState* u : members_) {
      if (u->backup == backups && u != exclude && IsUp(*u, now_ns)) candidates.push_back(u);
    }
    if (!candidates.empty()) break;
  }
  if (candidates.empty()) return nullptr;
  UpstreamState* best = nullptr;
  switch (balance_) {
    case Balance::kRoundRobin: {
      int64_t total = 0;
      for (UpstreamState* u : candidates) {
        u->current_weight += u->weight;
        total += u->weight;
        if (best == nullptr || u->current_weight > best->current_weight) best = u;
      }
      best->current_weight -= total;
      break;
    }
    case Balance::kLeastConn: {
      size_t n = candidates.size();
      size_t start = next_tie_++ % n;
      for (size_t i = 0; i < n; ++i) {
        UpstreamState* u = candidates[(start + i) % n];
        // active/weight < best.active/best.weight, without division.
        if (best == nullptr || u->active.load() * best->weight < best->active.load() * u->weight) {
          best = u;
        }
      }
      break;
    }
    case Balance::kHash: {
      std::string key = ClientKey(client);
      double best_score = 0;
      for (UpstreamState* u : candidates) {
        // Weighted rendezvous: -w / ln(x), x uniform in (0, 1).
        double x = (static_cast<double>(Hash(key, u->name) >> 11) + 0.5) / 9007199254740992.0;
        double score = -u->weight / std::log(x);
        if (best == nullptr || score > best_score) {
          best = u;
          best_score = score;
        }
      }
      break;
    }
  }
  best->active.fetch_add(1);
  best->total.fetch_add(1);
  return best;
}

void UpstreamPool::Connected(UpstreamState* upstream) {
  if (upstream->consecutive_failures.exchange(0) < kEjectAfterFailures) return;
  std::lock_guard<std::mutex> lock(mu_);
  upstream->down_until_ns.store(0);
  upstream->last_change = "up: a connect succeeded";
  upstream->last_change_at = absl::Now();
  LOG(INFO) << "upstream " << upstream->name << " is up again (a connect succeeded)";
}

void UpstreamPool::ConnectFailed(UpstreamState* upstream, absl::string_view why) {
  upstream->connect_errors.fetch_add(1);
  int failures = upstream->consecutive_failures.fetch_add(1) + 1;
  if (failures < kEjectAfterFailures) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (members_.size() < 2) return;
  bool was_up = upstream->down_until_ns.load() <= absl::GetCurrentTimeNanos();
  upstream->down_until_ns.store(absl::ToUnixNanos(absl::Now() + kEjectFor));
  if (!was_up) return;
  upstream->last_change = absl::StrCat("down: ", failures, " connect failures in a row (", why, ")");
  upstream->last_change_at = absl::Now();
  LOG(WARNING) << "upstream " << upstream->name << " is down for "
               << absl::FormatDuration(kEjectFor) << ": " << failures
               << " connect failures in a row (" << why << ")";
}

nlohmann::json UpstreamPool::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  nlohmann::json list = nlohmann::json::array();
  for (const UpstreamState* u : members_) {
    list.push_back({{"address", u->name},
                    {"weight", u->weight},
                    {"backup", u->backup},
                    {"up", IsUp(*u, now_ns)},
                    {"connections_active", u->active.load()},
                    {"connections_total", u->total.load()},
                    {"connect_errors", u->connect_errors.load()},
                    {"last_change", u->last_change.empty() ? nlohmann::json(nullptr)
                                                           : nlohmann::json(u->last_change)},
                    {"last_change_at", u->last_change.empty()
                                           ? nlohmann::json(nullptr)
                                           : nlohmann::json(FormatRfc3339(u->last_change_at))}});
  }
  return list;
}

std::vector<UpstreamPool::Sample> UpstreamPool::Samples() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  std::vector<Sample> samples;
  for (const UpstreamState* u : members_) {
    samples.push_back({u->name, IsUp(*u, now_ns), u->active.load(), u->total.load(),
                       u->connect_errors.load()});
  }
  return samples;
}

}  // namespace gateway
