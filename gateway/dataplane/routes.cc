// See routes.h.
#include "gateway/dataplane/routes.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"

namespace gateway {
namespace {

absl::StatusOr<SocketAddress> ParseUpstream(const SocketAddress& listen,
                                            const std::string& upstream) {
  absl::StatusOr<SocketAddress> u = SocketAddress::Parse(upstream);
  if (!u.ok()) return u.status();
  if (u->port() == 0) return absl::InvalidArgumentError(absl::StrCat("upstream ", upstream, " has port 0"));
  if (ListenAddressCovers(listen, *u)) {
    return absl::InvalidArgumentError(absl::StrCat("upstream ", u->ToString(),
                                                   " relays to its own listen address ",
                                                   listen.ToString(), " (it would loop)"));
  }
  return u;
}

absl::StatusOr<Route> MakeRoute(const std::string& name, const std::string& listen,
                                const std::string& upstream) {
  absl::StatusOr<SocketAddress> l = SocketAddress::Parse(listen);
  if (!l.ok()) return l.status();
  absl::StatusOr<SocketAddress> u = ParseUpstream(*l, upstream);
  if (!u.ok()) return u.status();
  Route route;
  route.name = name.empty() ? listen : name;
  route.listen = *l;
  route.upstream = *u;
  route.upstreams = {UpstreamSpec{*u}};
  return route;
}

// The "upstreams" list: addresses as strings or {address, weight, backup}.
absl::Status ParseUpstreams(const nlohmann::json& list, Route* route) {
  if (!list.is_array() || list.empty()) {
    return absl::InvalidArgumentError("\"upstreams\" must be a non-empty list");
  }
  std::set<std::string> seen;
  route->upstreams.clear();
  size_t index = 0;
  for (const nlohmann::json& entry : list) {
    std::string where = absl::StrCat("upstreams[", index++, "]");
    UpstreamSpec spec;
    std::string address;
    if (entry.is_string()) {
      address = entry.get<std::string>();
    } else if (entry.is_object()) {
      for (auto it = entry.begin(); it != entry.end(); ++it) {
        if (it.key() != "address" && it.key() != "weight" && it.key() != "backup") {
          return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key '", it.key(), "'"));
        }
      }
      if (!entry.contains("address") || !entry["address"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(where, " needs an \"address\" string"));
      }
      address = entry["address"].get<std::string>();
      if (entry.contains("weight")) {
        std::optional<int64_t> weight = JsonIntegerIn(entry["weight"], 1, kMaxUpstreamWeight);
        if (!weight) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": \"weight\" must be an integer "
                                                         "from 1 to ", kMaxUpstreamWeight));
        }
        spec.weight = static_cast<int>(*weight);
      }
      if (entry.contains("backup")) {
        if (!entry["backup"].is_boolean()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": \"backup\" must be true or false"));
        }
        spec.backup = entry["backup"].get<bool>();
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " must be an address string or an object"));
    }
    absl::StatusOr<SocketAddress> u = ParseUpstream(route->listen, address);
    if (!u.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", u.status().message()));
    if (!seen.insert(u->ToString()).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", u->ToString(), " is listed twice"));
    }
    spec.address = *u;
    route->upstreams.push_back(spec);
  }
  if (std::all_of(route->upstreams.begin(), route->upstreams.end(),
                  [](const UpstreamSpec& u) { return u.backup; })) {
    return absl::InvalidArgumentError("\"upstreams\" needs at least one that is not a backup");
  }
  route->upstream = route->upstreams[0].address;
  return absl::OkStatus();
}

// The "health_check" object (docs/configuration.md, "Health checks").
absl::Status ParseHealthCheck(const nlohmann::json& j, HealthCheck* check) {
  if (!j.is_object()) return absl::InvalidArgumentError("\"health_check\" must be an object");
  static const char* const kKeys[] = {"interval",  "fast_interval", "timeout",   "rise",
                                      "fall",      "send",          "expect",    "http_path",
                                      "http_host", "http_status"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find_if(std::begin(kKeys), std::end(kKeys),
                     [&](const char* k) { return it.key() == k; }) == std::end(kKeys)) {
      return absl::InvalidArgumentError(absl::StrCat("health_check: unknown key '", it.key(), "'"));
    }
    if (it.key() != "rise" && it.key() != "fall" &&
        (!it->is_string() || it->get_ref<const std::string&>().empty())) {
      return absl::InvalidArgumentError(absl::StrCat("health_check: \"", it.key(),
                                                     "\" must be a non-empty string"));
    }
  }
  auto duration = [&](const char* key, absl::Duration* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!absl::ParseDuration(j[key].get<std::string>(), out) || *out < absl::Milliseconds(10) ||
        *out > absl::Hours(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("health_check: bad ", key, " (use e.g. \"2s\"; 10ms to 1h)"));
    }
    return absl::OkStatus();
  };
  check->enabled = true;
  absl::Status s = duration("interval", &check->interval);
  if (!s.ok()) return s;
  if (!j.contains("timeout")) check->timeout = std::min(check->timeout, check->interval);
  s = duration("timeout", &check->timeout);
  if (!s.ok()) return s;
  if (check->timeout > check->interval) {
    return absl::InvalidArgumentError("health_check: timeout is longer than interval");
  }
  check->fast_interval = std::min(check->interval, std::max(absl::Milliseconds(10), check->interval / 4));
  s = duration("fast_interval", &check->fast_interval);
  if (!s.ok()) return s;
  if (check->fast_interval > check->interval) {
    return absl::InvalidArgumentError("health_check: fast_interval is longer than interval");
  }
  for (auto [key, out] : {std::pair<const char*, int*>{"rise", &check->rise}, {"fall", &check->fall}}) {
    if (!j.contains(key)) continue;
    std::optional<int64_t> n = JsonIntegerIn(j[key], 1, 100);
    if (!n) {
      return absl::InvalidArgumentError(
          absl::StrCat("health_check: \"", key, "\" must be an integer from 1 to 100"));
    }
    *out = static_cast<int>(*n);
  }
  auto text = [&](const char* key) {
    return j.contains(key) ? j[key].get<std::string>() : std::string();
  };
  check->send = text("send");
  check->expect = text("expect");
  check->http_path = text("http_path");
  check->http_host = text("http_host");
  if (check->http_path.empty() && (j.contains("http_host") || j.contains("http_status"))) {
    return absl::InvalidArgumentError("health_check: http_host and http_status need http_path");
  }
  if (!check->http_path.empty()) {
    if (!check->send.empty() || !check->expect.empty()) {
      return absl::InvalidArgumentError(
          "health_check: http_path and send/expect together (an HTTP check sends its own request)");
    }
    if (check->http_path[0] != '/' ||
        check->http_path.find_first_of(" \r\n\t") != std::string::npos) {
      return absl::InvalidArgumentError(
          "health_check: http_path must start with '/' and have no spaces or line breaks");
    }
    if (check->http_host.find_first_of(" \r\n\t") != std::string::npos) {
      return absl::InvalidArgumentError("health_check: http_host has spaces or line breaks");
    }
    if (j.contains("http_status")) {
      std::string range = text("http_status");
      std::vector<std::string> ends = absl::StrSplit(range, '-');
      int low = 0, high = 0;
      if (ends.size() > 2 || !absl::SimpleAtoi(ends[0], &low) ||
          !absl::SimpleAtoi(ends.back(), &high) || low < 100 || high > 599 || low > high) {
        return absl::InvalidArgumentError(absl::StrCat(
            "health_check: bad http_status '", TruncateUtf8(range, 32), "' (use e.g. \"200-399\")"));
      }
      check->status_min = low;
      check->status_max = high;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Route> MakePooledRoute(const std::string& name, const std::string& listen,
                                      const nlohmann::json& upstreams) {
  absl::StatusOr<SocketAddress> l = SocketAddress::Parse(listen);
  if (!l.ok()) return l.status();
  Route route;
  route.name = name.empty() ? listen : name;
  route.listen = *l;
  absl::Status parsed = ParseUpstreams(upstreams, &route);
  if (!parsed.ok()) return parsed;
  return route;
}

}  // namespace

const char* BalanceName(Balance balance) {
  switch (balance) {
    case Balance::kRoundRobin:
      return "round_robin";
    case Balance::kLeastConn:
      return "least_conn";
    case Balance::kHash:
      return "hash";
  }
  return "?";
}

absl::StatusOr<std::vector<Route>> ParseRouteFlag(const std::string& text) {
  std::vector<Route> routes;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    // The listen address never contains '=', so the first one splits.
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--route '", entry, "' needs LISTEN=UPSTREAM, e.g. 127.0.0.1:8080=127.0.0.1:9000"));
    }
    absl::StatusOr<Route> route = MakeRoute("", std::string(entry.substr(0, eq)),
                                            std::string(entry.substr(eq + 1)));
    if (!route.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--route '", entry, "': ", route.status().message()));
    }
    routes.push_back(*route);
  }
  absl::Status distinct = CheckRoutesAreDistinct(routes);
  if (!distinct.ok()) return distinct;
  return routes;
}

absl::StatusOr<std::vector<Route>> ParseRouteConfig(const std::string& json,
                                                    const std::string& origin) {
  auto error = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what));
  };
  absl::StatusOr<nlohmann::json> parsed = ParseJsonObject(json);
  if (!parsed.ok()) return error(std::string(parsed.status().message()));
  const nlohmann::json& j = *parsed;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "routes") return error(absl::StrCat("unknown key '", it.key(), "'"));
  }
  if (!j.contains("routes") || !j["routes"].is_array()) return error("needs a \"routes\" array");
  std::vector<Route> routes;
  size_t index = 0;
  for (const nlohmann::json& r : j["routes"]) {
    std::string where = absl::StrCat("routes[", index++, "]");
    if (!r.is_object()) return error(absl::StrCat(where, " is not an object"));
    // Every key is known, and the string keys, when present, are non-empty
    // strings: a mistyped value is an error, never a silent default.
    for (auto it = r.begin(); it != r.end(); ++it) {
      if (it.key() != "name" && it.key() != "listen" && it.key() != "upstream" &&
          it.key() != "upstreams" && it.key() != "balance" && it.key() != "connect_retries" &&
          it.key() != "connect_timeout" && it.key() != "max_connections" &&
          it.key() != "idle_timeout" && it.key() != "health_check" &&
          it.key() != "ready_requires_upstream" && it.key() != "send_proxy" &&
          it.key() != "accept_proxy" && it.key() != "proxy_header_timeout") {
        return error(absl::StrCat(where, ": unknown key '", it.key(), "'"));
      }
      if (it.key() == "upstreams" || it.key() == "connect_retries" ||
          it.key() == "max_connections" || it.key() == "health_check" ||
          it.key() == "ready_requires_upstream" || it.key() == "accept_proxy") {
        continue;
      }
      if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
        return error(absl::StrCat(where, ": \"", it.key(), "\" must be a non-empty string, not ",
                                  TruncateUtf8(DumpJson(*it), 64)));
      }
    }
    auto text = [&](const char* key) {
      return r.contains(key) ? r[key].get<std::string>() : std::string();
    };
    if (r.contains("upstream") && r.contains("upstreams")) {
      return error(absl::StrCat(where, ": \"upstream\" and \"upstreams\" together (use one)"));
    }
    if (text("listen").empty() || (text("upstream").empty() && !r.contains("upstreams"))) {
      return error(absl::StrCat(where, " needs \"listen\" and \"upstream\" strings"));
    }
    absl::StatusOr<Route> route = r.contains("upstreams")
                                      ? MakePooledRoute(text("name"), text("listen"), r["upstreams"])
                                      : MakeRoute(text("name"), text("listen"), text("upstream"));
    if (!route.ok()) return error(absl::StrCat(where, ": ", route.status().message()));
    if (r.contains("balance")) {
      std::string balance = text("balance");
      if (balance == "round_robin") {
        route->balance = Balance::kRoundRobin;
      } else if (balance == "least_conn") {
        route->balance = Balance::kLeastConn;
      } else if (balance == "hash") {
        route->balance = Balance::kHash;
      } else {
        return error(absl::StrCat(where, ": \"balance\" must be round_robin, least_conn or hash, not '",
                                  TruncateUtf8(balance, 64), "'"));
      }
    }
    if (r.contains("max_connections")) {
      std::optional<int64_t> max = JsonIntegerIn(r["max_connections"], 0, 10000000);
      if (!max) {
        return error(absl::StrCat(where, ": \"max_connections\" must be an integer from 0 (no "
                                  "limit) to 10000000"));
      }
      route->max_connections = *max;
    }
    if (r.contains("idle_timeout")) {
      absl::Duration idle;
      if (!absl::ParseDuration(text("idle_timeout"), &idle) || idle < absl::ZeroDuration()) {
        return error(absl::StrCat(where, ": bad idle_timeout (use e.g. \"5m\"; \"0s\": never)"));
      }
      route->idle_timeout = idle;
    }
    if (r.contains("health_check")) {
      absl::Status check = ParseHealthCheck(r["health_check"], &route->health_check);
      if (!check.ok()) return error(absl::StrCat(where, ": ", check.message()));
    }
    if (r.contains("ready_requires_upstream")) {
      if (!r["ready_requires_upstream"].is_boolean()) {
        return error(absl::StrCat(where, ": \"ready_requires_upstream\" must be true or false"));
      }
      route->ready_requires_upstream = r["ready_requires_upstream"].get<bool>();
    }
    if (r.contains("send_proxy")) {
      std::string version = text("send_proxy");
      if (version == "v1") {
        route->send_proxy = Route::SendProxy::kV1;
      } else if (version == "v2") {
        route->send_proxy = Route::SendProxy::kV2;
      } else {
        return error(absl::StrCat(where, ": \"send_proxy\" must be \"v1\" or \"v2\", not '",
                                  TruncateUtf8(version, 16), "'"));
      }
    }
    if (r.contains("accept_proxy")) {
      if (!r["accept_proxy"].is_boolean()) {
        return error(absl::StrCat(where, ": \"accept_proxy\" must be true or false"));
      }
      route->accept_proxy = r["accept_proxy"].get<bool>();
    }
    if (r.contains("proxy_header_timeout")) {
      absl::Duration timeout;
      if (!absl::ParseDuration(text("proxy_header_timeout"), &timeout) ||
          timeout <= absl::ZeroDuration() || timeout > absl::Minutes(5)) {
        return error(absl::StrCat(where, ": bad proxy_header_timeout (use e.g. \"3s\"; at most 5m)"));
      }
      if (!route->accept_proxy) {
        return error(absl::StrCat(where, ": proxy_header_timeout without \"accept_proxy\": true"));
      }
      route->proxy_header_timeout = timeout;
    }
    if (r.contains("connect_retries")) {
      std::optional<int64_t> retries = JsonIntegerIn(r["connect_retries"], 0, 16);
      if (!retries) return error(absl::StrCat(where, ": \"connect_retries\" must be an integer from 0 to 16"));
      route->connect_retries = static_cast<int>(*retries);
    }
    if (r.contains("connect_timeout")) {
      absl::Duration timeout;
      if (!absl::ParseDuration(text("connect_timeout"), &timeout) || timeout <= absl::ZeroDuration()) {
        return error(absl::StrCat(where, ": bad connect_timeout (use e.g. \"5s\")"));
      }
      route->connect_timeout = timeout;
    }
    routes.push_back(*route);
  }
  absl::Status distinct = CheckRoutesAreDistinct(routes);
  if (!distinct.ok()) return error(std::string(distinct.message()));
  return routes;
}

absl::StatusOr<std::vector<Route>> LoadRouteConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadRegularFile(path, kMaxConfigBytes);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("config ", text.status().message()));
  return ParseRouteConfig(*text, path);
}

absl::StatusOr<std::vector<Route>> LoadRoutes(const std::string& route_flag,
                                              const std::string& config_path) {
  absl::StatusOr<std::vector<Route>> routes = ParseRouteFlag(route_flag);
  if (!routes.ok() || config_path.empty()) return routes;
  absl::StatusOr<std::vector<Route>> from_file = LoadRouteConfig(config_path);
  if (!from_file.ok()) return from_file.status();
  routes->insert(routes->end(), from_file->begin(), from_file->end());
  absl::Status distinct = CheckRoutesAreDistinct(*routes);
  if (!distinct.ok()) return distinct;
  return routes;
}

absl::Status CheckRoutesAreDistinct(const std::vector<Route>& routes) {
  std::set<std::string> names;
  std::set<std::string> listens;
  for (const Route& route : routes) {
    if (!names.insert(route.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("route name '", route.name, "' is used twice"));
    }
    if (!listens.insert(route.listen.ToString()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("listen address ", route.listen.ToString(), " is used by two routes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace gateway
