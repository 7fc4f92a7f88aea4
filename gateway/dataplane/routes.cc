// See routes.h.
#include "gateway/dataplane/routes.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"

namespace gateway {
namespace {

absl::StatusOr<Route> MakeRoute(const std::string& name, const std::string& listen,
                                const std::string& upstream) {
  absl::StatusOr<SocketAddress> l = SocketAddress::Parse(listen);
  if (!l.ok()) return l.status();
  absl::StatusOr<SocketAddress> u = SocketAddress::Parse(upstream);
  if (!u.ok()) return u.status();
  if (u->port() == 0) return absl::InvalidArgumentError(absl::StrCat("upstream ", upstream, " has port 0"));
  if (ListenAddressCovers(*l, *u)) {
    return absl::InvalidArgumentError(absl::StrCat("upstream ", u->ToString(),
                                                   " relays to its own listen address ",
                                                   l->ToString(), " (it would loop)"));
  }
  Route route;
  route.name = name.empty() ? listen : name;
  route.listen = *l;
  route.upstream = *u;
  return route;
}

}  // namespace

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
          it.key() != "connect_timeout") {
        return error(absl::StrCat(where, ": unknown key '", it.key(), "'"));
      }
      if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
        return error(absl::StrCat(where, ": \"", it.key(), "\" must be a non-empty string, not ",
                                  TruncateUtf8(DumpJson(*it), 64)));
      }
    }
    auto text = [&](const char* key) {
      return r.contains(key) ? r[key].get<std::string>() : std::string();
    };
    if (text("listen").empty() || text("upstream").empty()) {
      return error(absl::StrCat(where, " needs \"listen\" and \"upstream\" strings"));
    }
    absl::StatusOr<Route> route = MakeRoute(text("name"), text("listen"), text("upstream"));
    if (!route.ok()) return error(absl::StrCat(where, ": ", route.status().message()));
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
