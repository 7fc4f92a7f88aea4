// See upstream_pool.h.
#include "gateway/dataplane/upstream_pool.h"

#include <netinet/in.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/match.h"
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

const char* AdminStateName(AdminState state) {
  switch (state) {
    case AdminState::kEnabled:
      return "enabled";
    case AdminState::kDrain:
      return "drain";
    case AdminState::kDisabled:
      return "disabled";
  }
  return "?";
}

const char* ChangeCauseName(ChangeCause cause) {
  switch (cause) {
    case ChangeCause::kNone:
      return "none";
    case ChangeCause::kChecks:
      return "checks";
    case ChangeCause::kConnects:
      return "connects";
    case ChangeCause::kAdmin:
      return "admin";
  }
  return "?";
}

UpstreamPool::UpstreamPool(const Route& route) { Update(route); }

void UpstreamPool::Update(const Route& route) {
  std::lock_guard<std::mutex> lock(mu_);
  route_name_ = route.name;
  balance_ = route.balance;
  const bool checks_were_on = check_.enabled;
  check_ = route.health_check;
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
  // Checks turned off: nothing would ever bring a checked-down upstream
  // back. Turned on: each upstream starts as up until its first check.
  if (checks_were_on != check_.enabled) {
    for (auto& known : known_) {
      known->checked_down.store(false);
      known->check_successes = known->check_failures = 0;
      known->check_succeeded = false;
      known->check_latency_us.store(-1);
      known->last_check.clear();
    }
  }
}

bool UpstreamPool::IsUp(const UpstreamState& upstream, int64_t now_ns) const {
  if (check_.enabled) return !upstream.checked_down.load();
  return members_.size() < 2 || upstream.down_until_ns.load() <= now_ns;
}

bool UpstreamPool::Usable(const UpstreamState& upstream, int64_t now_ns) const {
  return upstream.admin.load() == AdminState::kEnabled && IsUp(upstream, now_ns);
}

void UpstreamPool::Changed(UpstreamState* upstream, ChangeCause cause, std::string why) {
  if (absl::StartsWith(why, "down")) {
    LOG(WARNING) << "route " << route_name_ << ": upstream " << upstream->name << " is " << why;
  } else {
    LOG(INFO) << "route " << route_name_ << ": upstream " << upstream->name << " is " << why;
  }
  upstream->last_change = std::move(why);
  upstream->last_change_at = absl::Now();
  upstream->last_change_cause = cause;
}

UpstreamState* UpstreamPool::Pick(const SocketAddress& client, const UpstreamState* exclude) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  std::vector<UpstreamState*> candidates;
  for (bool backups : {false, true}) {
    for (UpstreamState* u : members_) {
      if (u->backup == backups && u != exclude && Usable(*u, now_ns)) candidates.push_back(u);
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
  if (check_.enabled) return;  // the checks bring it back
  upstream->down_until_ns.store(0);
  Changed(upstream, ChangeCause::kConnects, "up: a connect succeeded");
}

void UpstreamPool::ConnectFailed(UpstreamState* upstream, absl::string_view why) {
  upstream->connect_errors.fetch_add(1);
  int failures = upstream->consecutive_failures.fetch_add(1) + 1;
  if (failures < kEjectAfterFailures) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::string reason = absl::StrCat("down: ", failures, " connect failures in a row (", why, ")");
  if (check_.enabled) {
    if (upstream->checked_down.exchange(true)) return;
    upstream->check_successes = 0;
    Changed(upstream, ChangeCause::kConnects,
            absl::StrCat(reason, "; back after ", check_.rise, " check(s) succeed"));
    return;
  }
  if (members_.size() < 2) return;
  bool was_up = upstream->down_until_ns.load() <= absl::GetCurrentTimeNanos();
  upstream->down_until_ns.store(absl::ToUnixNanos(absl::Now() + kEjectFor));
  if (was_up) {
    Changed(upstream, ChangeCause::kConnects,
            absl::StrCat("down for ", absl::FormatDuration(kEjectFor), ": ", failures,
                         " connect failures in a row (", why, ")"));
  }
}

std::vector<CheckTarget> UpstreamPool::CheckTargets() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CheckTarget> targets;
  if (!check_.enabled) return targets;
  for (UpstreamState* u : members_) {
    if (u->admin.load() != AdminState::kDisabled) targets.push_back({u, check_});
  }
  return targets;
}

bool UpstreamPool::CheckDone(UpstreamState* upstream, absl::Duration latency,
                             const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!check_.enabled) return false;  // turned off while it ran
  upstream->check_latency_us.store(absl::ToInt64Microseconds(latency));
  upstream->last_check = error.empty() ? "ok" : error;
  if (error.empty()) {
    upstream->check_failures = 0;
    upstream->check_succeeded = true;
    ++upstream->check_successes;
    if (!upstream->checked_down.load()) return false;
    if (upstream->check_successes < check_.rise) return true;  // rising
    upstream->checked_down.store(false);
    upstream->consecutive_failures.store(0);
    Changed(upstream, ChangeCause::kChecks,
            absl::StrCat("up: ", upstream->check_successes, " check(s) in a row succeeded"));
    return false;
  }
  upstream->check_successes = 0;
  ++upstream->check_failures;
  if (upstream->checked_down.load()) return false;
  if (!upstream->check_succeeded) {
    upstream->checked_down.store(true);
    Changed(upstream, ChangeCause::kChecks, absl::StrCat("down: its first check failed: ", error));
    return false;
  }
  if (upstream->check_failures < check_.fall) return true;  // falling
  upstream->checked_down.store(true);
  Changed(upstream, ChangeCause::kChecks,
          absl::StrCat("down: ", upstream->check_failures, " checks in a row failed, the last: ",
                       error));
  return false;
}

bool UpstreamPool::SetAdmin(absl::string_view address, AdminState state, nlohmann::json* now) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  for (UpstreamState* u : members_) {
    if (u->name != address) continue;
    if (u->admin.exchange(state) != state) {
      Changed(u, ChangeCause::kAdmin, absl::StrCat("admin: ", AdminStateName(state), " (gatewayctl)"));
    }
    if (now != nullptr) *now = MemberJson(*u, now_ns);
    return true;
  }
  return false;
}

nlohmann::json UpstreamPool::ExportState() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  nlohmann::json state = nlohmann::json::object();
  for (const UpstreamState* u : members_) {
    int64_t down_for_ns = std::max<int64_t>(0, u->down_until_ns.load() - now_ns);
    state[u->name] = {{"admin", AdminStateName(u->admin.load())},
                      {"checked_down", u->checked_down.load()},
                      {"check_succeeded", u->check_succeeded},
                      {"down_for_ms", down_for_ns / 1000000},
                      {"last_change", u->last_change},
                      {"last_change_cause", ChangeCauseName(u->last_change_cause)},
                      {"last_change_at", u->last_change.empty()
                                             ? std::string()
                                             : FormatRfc3339(u->last_change_at)}};
  }
  return state;
}

void UpstreamPool::Inherit(const nlohmann::json& state) {
  if (!state.is_object()) return;
  std::lock_guard<std::mutex> lock(mu_);
  // From another process (perhaps another version): a field of the wrong
  // type is ignored, never an exception.
  auto text = [](const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto flag = [](const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  };
  for (UpstreamState* u : members_) {
    auto it = state.find(u->name);
    if (it == state.end() || !it->is_object()) continue;
    const nlohmann::json& s = *it;
    std::string admin = text(s, "admin");
    for (AdminState a : {AdminState::kEnabled, AdminState::kDrain, AdminState::kDisabled}) {
      if (admin == AdminStateName(a)) u->admin.store(a);
    }
    if (check_.enabled) {
      u->checked_down.store(flag(s, "checked_down"));
      u->check_succeeded = flag(s, "check_succeeded");
    }
    std::optional<int64_t> down_for_ms =
        s.contains("down_for_ms") ? JsonIntegerIn(s["down_for_ms"], 0, 3600 * 1000) : std::nullopt;
    if (down_for_ms && *down_for_ms > 0) {
      u->down_until_ns.store(absl::GetCurrentTimeNanos() + *down_for_ms * 1000000);
    }
    absl::Time at;
    std::string error;
    if (!text(s, "last_change").empty() &&
        absl::ParseTime(absl::RFC3339_full, text(s, "last_change_at"), &at, &error)) {
      u->last_change = text(s, "last_change");
      u->last_change_at = at;
      u->last_change_cause = ChangeCause::kNone;
      for (ChangeCause c : {ChangeCause::kChecks, ChangeCause::kConnects, ChangeCause::kAdmin}) {
        if (text(s, "last_change_cause") == ChangeCauseName(c)) u->last_change_cause = c;
      }
    }
  }
}

bool UpstreamPool::AnyUp() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  for (const UpstreamState* u : members_) {
    if (Usable(*u, now_ns)) return true;
  }
  return false;
}

nlohmann::json UpstreamPool::MemberJson(const UpstreamState& u, int64_t now_ns) const {
  nlohmann::json check = nullptr;
  if (check_.enabled) {
    int64_t latency_us = u.check_latency_us.load();
    check = {{"last", u.last_check.empty() ? nlohmann::json(nullptr) : nlohmann::json(u.last_check)},
             {"latency_ms", latency_us < 0 ? nlohmann::json(nullptr)
                                           : nlohmann::json(static_cast<double>(latency_us) / 1000)},
             {"successes_in_a_row", u.check_successes},
             {"failures_in_a_row", u.check_failures}};
  }
  return {{"address", u.name},
          {"weight", u.weight},
          {"backup", u.backup},
          {"up", IsUp(u, now_ns)},
          {"admin", AdminStateName(u.admin.load())},
          {"connections_active", u.active.load()},
          {"connections_total", u.total.load()},
          {"connect_errors", u.connect_errors.load()},
          {"check", check},
          {"last_change", u.last_change.empty() ? nlohmann::json(nullptr)
                                                : nlohmann::json(u.last_change)},
          {"last_change_cause", u.last_change.empty()
                                    ? nlohmann::json(nullptr)
                                    : nlohmann::json(ChangeCauseName(u.last_change_cause))},
          {"last_change_at", u.last_change.empty()
                                 ? nlohmann::json(nullptr)
                                 : nlohmann::json(FormatRfc3339(u.last_change_at))}};
}

nlohmann::json UpstreamPool::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  nlohmann::json list = nlohmann::json::array();
  for (const UpstreamState* u : members_) list.push_back(MemberJson(*u, now_ns));
  return list;
}

std::vector<UpstreamPool::Sample> UpstreamPool::Samples() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now_ns = absl::GetCurrentTimeNanos();
  std::vector<Sample> samples;
  for (const UpstreamState* u : members_) {
    samples.push_back({u->name, IsUp(*u, now_ns), u->admin.load(), u->active.load(),
                       u->total.load(), u->connect_errors.load(), u->check_latency_us.load(),
                       u->last_change_cause, u->last_change_at});
  }
  return samples;
}

}  // namespace gateway
