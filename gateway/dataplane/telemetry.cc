// See telemetry.h.
#include "gateway/dataplane/telemetry.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"

namespace gateway {

RouteStats* Telemetry::StatsFor(const std::string& route_name) {
  std::lock_guard<std::mutex> lock(mu_);
  for (RouteStats& stats : stats_) {
    if (stats.name == route_name) return &stats;
  }
  return &stats_.emplace_back(route_name);
}

void Telemetry::SetRoutes(const std::vector<Route>& routes) {
  std::lock_guard<std::mutex> lock(mu_);
  routes_ = routes;
}

void Telemetry::SetStopped(StopClass stop_class, const std::string& detector) {
  std::lock_guard<std::mutex> lock(mu_);
  stop_class_ = std::string(StopClassName(stop_class));
  stop_detector_ = detector;
}

int64_t Telemetry::ActiveConnections() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t active = 0;
  for (const RouteStats& stats : stats_) active += stats.active.load();
  return active;
}

UpstreamPool* Telemetry::PoolFor(const Route& route) {
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<UpstreamPool>& pool = pools_[route.name];
  if (pool == nullptr) {
    pool = std::make_unique<UpstreamPool>(route);
  } else {
    pool->Update(route);
  }
  return pool.get();
}

std::vector<UpstreamPool*> Telemetry::CurrentPools() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<UpstreamPool*> pools;
  for (const Route& route : routes_) {
    if (auto it = pools_.find(route.name); it != pools_.end()) pools.push_back(it->second.get());
  }
  return pools;
}

std::string Telemetry::NotReadyBecause() const {
  Phase phase = phase_.load();
  if (phase != Phase::kServing) return std::string(PhaseName(phase));
  std::lock_guard<std::mutex> lock(mu_);
  for (const Route& route : routes_) {
    if (!route.ready_requires_upstream) continue;
    auto it = pools_.find(route.name);
    if (it != pools_.end() && !it->second->AnyUp()) {
      return absl::StrCat("route ", route.name, " has no upstream up (ready_requires_upstream)");
    }
  }
  return "";
}

nlohmann::json Telemetry::UpstreamCommand(const nlohmann::json& request) {
  std::string action = request.value("action", std::string());
  std::lock_guard<std::mutex> lock(mu_);
  if (action == "list") {
    nlohmann::json routes = nlohmann::json::array();
    for (const Route& route : routes_) {
      auto it = pools_.find(route.name);
      if (it == pools_.end()) continue;
      routes.push_back({{"route", route.name},
                        {"balance", BalanceName(route.balance)},
                        {"upstreams", it->second->StatusJson()}});
    }
    return {{"ok", true}, {"routes", routes}};
  }
  AdminState state;
  if (action == "drain") {
    state = AdminState::kDrain;
  } else if (action == "disable") {
    state = AdminState::kDisabled;
  } else if (action == "enable") {
    state = AdminState::kEnabled;
  } else {
    return {{"ok", false}, {"error", "upstream: action must be list, drain, disable or enable"}};
  }
  if (!request.contains("route") || !request["route"].is_string() ||
      !request.contains("address") || !request["address"].is_string()) {
    return {{"ok", false}, {"error", "upstream: needs \"route\" and \"address\" strings"}};
  }
  std::string route = request["route"].get<std::string>();
  std::string address = request["address"].get<std::string>();
  auto known = std::find_if(routes_.begin(), routes_.end(),
                            [&](const Route& r) { return r.name == route; });
  auto pool = pools_.find(route);
  if (known == routes_.end() || pool == pools_.end()) {
    return {{"ok", false}, {"error", absl::StrCat("no route named '", TruncateUtf8(route, 64), "'")}};
  }
  // The address as the pool names it: "127.0.0.1:9000", "[::1]:9000".
  absl::StatusOr<SocketAddress> parsed = SocketAddress::Parse(address);
  nlohmann::json now;
  if (!parsed.ok() || !pool->second->SetAdmin(parsed->ToString(), state, &now)) {
    return {{"ok", false},
            {"error", absl::StrCat("route ", route, " has no upstream ", TruncateUtf8(address, 64))}};
  }
  return {{"ok", true}, {"route", route}, {"upstream", now}};
}

nlohmann::json Telemetry::ExportUpstreamState() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json state = nlohmann::json::object();
  for (const Route& route : routes_) {
    if (auto it = pools_.find(route.name); it != pools_.end()) {
      state[route.name] = it->second->ExportState();
    }
  }
  return state;
}

void Telemetry::InheritUpstreamState(const nlohmann::json& state) {
  if (!state.is_object()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [route, pool] : pools_) {
    if (auto it = state.find(route); it != state.end()) pool->Inherit(*it);
  }
}

WorkerStats* Telemetry::StatsForWorker(int index) {
  std::lock_guard<std::mutex> lock(mu_);
  while (static_cast<int>(workers_.size()) <= index) {
    workers_.emplace_back(static_cast<int>(workers_.size()));
  }
  return &workers_[static_cast<size_t>(index)];
}

nlohmann::json Telemetry::StatusJson() const {
  const bool ready = Ready();
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json routes = nlohmann::json::array();
  int64_t active = 0;
  for (const RouteStats& stats : stats_) active += stats.active.load();
  for (const Route& route : routes_) {
    nlohmann::json r = {{"name", route.name},
                        {"listen", route.listen.ToString()},
                        {"upstream", route.upstream.ToString()},
                        {"balance", BalanceName(route.balance)},
                        {"connect_retries", route.connect_retries},
                        {"max_connections", route.max_connections},
                        {"idle_timeout", absl::FormatDuration(route.idle_timeout)},
                        {"ready_requires_upstream", route.ready_requires_upstream}};
    if (route.health_check.enabled) {
      const HealthCheck& c = route.health_check;
      r["health_check"] = {{"type", c.http_path.empty() ? "tcp" : "http"},
                           {"interval", absl::FormatDuration(c.interval)},
                           {"fast_interval", absl::FormatDuration(c.fast_interval)},
                           {"timeout", absl::FormatDuration(c.timeout)},
                           {"rise", c.rise},
                           {"fall", c.fall}};
    } else {
      r["health_check"] = nullptr;
    }
    if (auto pool = pools_.find(route.name); pool != pools_.end()) {
      r["upstreams"] = pool->second->StatusJson();
    }
    for (const RouteStats& stats : stats_) {
      if (stats.name != route.name) continue;
      r["connections_active"] = stats.active.load();
      r["connections_total"] = stats.total.load();
      r["bytes_to_upstream"] = stats.bytes_to_upstream.load();
      r["bytes_to_client"] = stats.bytes_to_client.load();
      r["upstream_errors"] = stats.upstream_connect_errors.load() + stats.upstream_timeouts.load();
      r["upstream_retries"] = stats.upstream_retries.load();
      r["no_upstream"] = stats.no_upstream.load();
      r["over_limit"] = stats.over_limit.load();
      r["idle_closed"] = stats.idle_closed.load();
      r["proxy_header_errors"] = stats.proxy_header_errors.load();
    }
    routes.push_back(r);
  }
  nlohmann::json workers = nlohmann::json::array();
  for (const WorkerStats& worker : workers_) {
    workers.push_back({{"worker", worker.index},
                       {"connections_active", worker.active.load()},
                       {"connections_total", worker.total.load()}});
  }
  nlohmann::json previous = PreviousRunToJson(identity_.previous);
  return {
      {"pid", identity_.pid},
      {"started_at", FormatRfc3339(identity_.started_at)},
      {"uptime_seconds", absl::ToDoubleSeconds(absl::Now() - identity_.started_at)},
      {"phase", std::string(PhaseName(phase_.load()))},
      {"ready", ready},
      {"state_dir", identity_.state_dir},
      {"detectors", identity_.detectors},
      {"routes", routes},
      {"connections_active", active},
      {"workers", workers},
      {"previous_exit", identity_.previous.exit},
      {"previous_run", previous},
      {"last_shutdown", identity_.previous_record},
      {"stop", stop_class_.empty() ? nlohmann::json(nullptr)
                                   : nlohmann::json{{"class", stop_class_},
                                                    {"detector", stop_detector_}}},
  };
}

namespace {

// Escapes a label value for the Prometheus text format.
std::string Label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

void Family(std::string* out, const char* name, const char* type, const char* help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// The stop history's view, across restarts (stop_history_metrics.h).
void AppendRecordedStops(const RecordedStops& stops, std::string* out) {
  Family(out, "gateway_recorded_stops_total", "counter",
         "Stops recorded in this state directory's stop history (every instance, across "
         "restarts) by class and detector; class unclean: runs that died without a record "
         "(SIGKILL, OOM, crash).");
  // Every class has a series, so a class's first stop is an increase from
  // 0 rather than a series appearing.
  std::map<std::pair<std::string, std::string>, int64_t> series = stops.by_class_and_detector;
  for (const char* stop_class : {"takeover", "planned", "unexpected", kUncleanStopClass}) {
    auto first = series.lower_bound({stop_class, ""});
    if (first == series.end() || first->first.first != stop_class) {
      series[{stop_class, kNoDetectorLabel}] = 0;
    }
  }
  for (const auto& [key, count] : series) {
    absl::StrAppend(out, "gateway_recorded_stops_total{class=\"", Label(key.first),
                    "\",detector=\"", Label(key.second), "\"} ", count, "\n");
  }
  Family(out, "gateway_last_stop_timestamp_seconds", "gauge",
         "When the newest stop recorded in this state directory's history exited (Unix "
         "time); no sample without a record.");
  if (stops.last_stop_at) {
    absl::StrAppend(out, "gateway_last_stop_timestamp_seconds ",
                    absl::StrFormat("%.3f", absl::ToUnixMillis(*stops.last_stop_at) / 1000.0),
                    "\n");
  }
}

}  // namespace

std::string Telemetry::PrometheusText() const {
  // Outside mu_: it may read the history files.
  std::optional<RecordedStops> recorded;
  if (identity_.stop_history != nullptr) recorded = identity_.stop_history->Current();
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  struct PerRoute {
    const char* name;
    const char* type;
    const char* help;
    const std::atomic<int64_t> RouteStats::*field;
  };
  const PerRoute per_route[] = {
      {"gateway_connections_active", "gauge", "Connections being relayed now.", &RouteStats::active},
      {"gateway_connections_total", "counter", "Connections accepted.", &RouteStats::total},
      {"gateway_upstream_connect_errors_total", "counter",
       "Upstream connections refused or failed; the client was closed.",
       &RouteStats::upstream_connect_errors},
      {"gateway_upstream_connect_timeouts_total", "counter",
       "Upstream connections that did not complete within the connect timeout.",
       &RouteStats::upstream_timeouts},
      {"gateway_upstream_retries_total", "counter",
       "Connects tried again on another upstream after a refusal, reset or timeout.",
       &RouteStats::upstream_retries},
      {"gateway_no_upstream_total", "counter",
       "Clients closed at once because no upstream of the route was up.",
       &RouteStats::no_upstream},
      {"gateway_over_limit_total", "counter",
       "Clients closed at once because the route had max_connections open.",
       &RouteStats::over_limit},
      {"gateway_idle_closed_total", "counter",
       "Connections closed after idle_timeout with no byte either way.",
       &RouteStats::idle_closed},
      {"gateway_proxy_header_errors_total", "counter",
       "accept_proxy clients closed: PROXY header malformed, oversized, or not complete in time.",
       &RouteStats::proxy_header_errors},
  };
  for (const PerRoute& metric : per_route) {
    Family(&out, metric.name, metric.type, metric.help);
    for (const RouteStats& stats : stats_) {
      absl::StrAppend(&out, metric.name, "{route=\"", Label(stats.name), "\"} ",
                      (stats.*metric.field).load(), "\n");
    }
  }
  Family(&out, "gateway_bytes_total", "counter", "Bytes relayed, by direction.");
  for (const RouteStats& stats : stats_) {
    absl::StrAppend(&out, "gateway_bytes_total{route=\"", Label(stats.name),
                    "\",direction=\"to_upstream\"} ", stats.bytes_to_upstream.load(), "\n");
    absl::StrAppend(&out, "gateway_bytes_total{route=\"", Label(stats.name),
                    "\",direction=\"to_client\"} ", stats.bytes_to_client.load(), "\n");
  }
  // Per upstream of every route's pool.
  std::vector<std::pair<std::string, std::vector<UpstreamPool::Sample>>> pools;
  for (const auto& [route, pool] : pools_) pools.emplace_back(route, pool->Samples());
  struct PerUpstream {
    const char* name;
    const char* type;
    const char* help;
    int64_t (*value)(const UpstreamPool::Sample&);
  };
  const PerUpstream per_upstream[] = {
      {"gateway_upstream_up", "gauge",
       "1 while the upstream is healthy (checks pass, not ejected); see admin_state too.",
       [](const UpstreamPool::Sample& s) -> int64_t { return s.up ? 1 : 0; }},
      {"gateway_upstream_connections_active", "gauge", "Connections to the upstream now.",
       [](const UpstreamPool::Sample& s) { return s.active; }},
      {"gateway_upstream_connections_total", "counter", "Connections sent to the upstream.",
       [](const UpstreamPool::Sample& s) { return s.total; }},
      {"gateway_upstream_errors_total", "counter",
       "Connects to the upstream refused, reset or timed out.",
       [](const UpstreamPool::Sample& s) { return s.connect_errors; }},
  };
  for (const PerUpstream& metric : per_upstream) {
    Family(&out, metric.name, metric.type, metric.help);
    for (const auto& [route, samples] : pools) {
      for (const UpstreamPool::Sample& sample : samples) {
        absl::StrAppend(&out, metric.name, "{route=\"", Label(route), "\",upstream=\"",
                        Label(sample.upstream), "\"} ", metric.value(sample), "\n");
      }
    }
  }
  Family(&out, "gateway_upstream_admin_state", "gauge",
         "1 for the upstream's admin state (gatewayctl upstream drain|disable|enable).");
  for (const auto& [route, samples] : pools) {
    for (const UpstreamPool::Sample& sample : samples) {
      for (AdminState state : {AdminState::kEnabled, AdminState::kDrain, AdminState::kDisabled}) {
        absl::StrAppend(&out, "gateway_upstream_admin_state{route=\"", Label(route),
                        "\",upstream=\"", Label(sample.upstream), "\",state=\"",
                        AdminStateName(state), "\"} ", sample.admin == state ? 1 : 0, "\n");
      }
    }
  }
  Family(&out, "gateway_upstream_check_latency_seconds", "gauge",
         "How long the upstream's last health check took.");
  for (const auto& [route, samples] : pools) {
    for (const UpstreamPool::Sample& sample : samples) {
      if (sample.check_latency_us < 0) continue;
      absl::StrAppend(&out, "gateway_upstream_check_latency_seconds{route=\"", Label(route),
                      "\",upstream=\"", Label(sample.upstream), "\"} ",
                      absl::StrFormat("%.6f", static_cast<double>(sample.check_latency_us) / 1e6),
                      "\n");
    }
  }
  Family(&out, "gateway_upstream_last_change_timestamp_seconds", "gauge",
         "When the upstream's state last changed, and what changed it (checks, connects, admin); "
         "why, in words, is in /status. Absent until the first change.");
  for (const auto& [route, samples] : pools) {
    for (const UpstreamPool::Sample& sample : samples) {
      if (sample.last_change_cause == ChangeCause::kNone) continue;
      absl::StrAppend(&out, "gateway_upstream_last_change_timestamp_seconds{route=\"", Label(route),
                      "\",upstream=\"", Label(sample.upstream), "\",cause=\"",
                      ChangeCauseName(sample.last_change_cause), "\"} ",
                      absl::StrFormat("%.3f", absl::ToDoubleSeconds(sample.last_change_at -
                                                                    absl::UnixEpoch())),
                      "\n");
    }
  }
  Family(&out, "gateway_worker_connections_active", "gauge",
         "Connections being relayed now, by worker event loop (--workers).");
  for (const WorkerStats& worker : workers_) {
    absl::StrAppend(&out, "gateway_worker_connections_active{worker=\"", worker.index, "\"} ",
                    worker.active.load(), "\n");
  }
  Family(&out, "gateway_worker_connections_total", "counter",
         "Connections accepted, by worker event loop (--workers).");
  for (const WorkerStats& worker : workers_) {
    absl::StrAppend(&out, "gateway_worker_connections_total{worker=\"", worker.index, "\"} ",
                    worker.total.load(), "\n");
  }
  if (access_log_ != nullptr) {
    Family(&out, "gateway_access_log_lines_total", "counter",
           "Access log lines written, and dropped because the file could not keep up.");
    absl::StrAppend(&out, "gateway_access_log_lines_total{result=\"written\"} ",
                    access_log_->lines_written(), "\n",
                    "gateway_access_log_lines_total{result=\"dropped\"} ",
                    access_log_->lines_dropped(), "\n");
    Family(&out, "gateway_access_log_reopens_total", "counter",
           "Access log reopens (SIGUSR1, gatewayctl reopen-logs).");
    absl::StrAppend(&out, "gateway_access_log_reopens_total ", access_log_->reopens(), "\n");
  }
  Family(&out, "gateway_accept_errors_total", "counter",
         "accept(2) failures such as EMFILE; accepting pauses briefly after each.");
  absl::StrAppend(&out, "gateway_accept_errors_total ", accept_errors.load(), "\n");
  Family(&out, "gateway_draining", "gauge", "1 while draining after a stop signal.");
  absl::StrAppend(&out, "gateway_draining ", phase_.load() == Phase::kDraining ? 1 : 0, "\n");
  Family(&out, "gateway_ready", "gauge", "1 while serving and ready for traffic.");
  absl::StrAppend(&out, "gateway_ready ", phase_.load() == Phase::kServing ? 1 : 0, "\n");
  Family(&out, "gateway_drain_closed_at_deadline_total", "counter",
         "Connections cut when the drain deadline passed.");
  absl::StrAppend(&out, "gateway_drain_closed_at_deadline_total ", closed_at_deadline.load(), "\n");
  Family(&out, "gateway_stops_total", "counter",
         "Stops of this process by class (0 or 1 each: a verdict is latched once).");
  for (const char* c : {"takeover", "planned", "unexpected"}) {
    absl::StrAppend(&out, "gateway_stops_total{class=\"", c, "\"} ", stop_class_ == c ? 1 : 0, "\n");
  }
  Family(&out, "gateway_previous_run_info", "gauge",
         "How the previous run on this state directory ended (exit: none, clean, unclean, unrecorded).");
  absl::StrAppend(&out, "gateway_previous_run_info{exit=\"", Label(identity_.previous.exit),
                  "\",class=\"", Label(identity_.previous.stop_class), "\"} 1\n");
  Family(&out, "gateway_previous_exit_unclean", "gauge",
         "1 when the previous run died without a stop record (SIGKILL, OOM, crash).");
  absl::StrAppend(&out, "gateway_previous_exit_unclean ",
                  identity_.previous.exit == "unclean" ? 1 : 0, "\n");
  if (recorded) AppendRecordedStops(*recorded, &out);
  Family(&out, "gateway_config_reloads_total", "counter",
         "SIGHUP reloads by result (refused_stopping: after a stop was latched).");
  absl::StrAppend(&out, "gateway_config_reloads_total{result=\"ok\"} ", reloads_ok.load(), "\n");
  absl::StrAppend(&out, "gateway_config_reloads_total{result=\"failed\"} ", reloads_failed.load(), "\n");
  absl::StrAppend(&out, "gateway_config_reloads_total{result=\"refused_stopping\"} ",
                  reloads_refused_stopping.load(), "\n");
  Family(&out, "gateway_start_time_seconds", "gauge", "Start time of this process (Unix).");
  absl::StrAppend(&out, "gateway_start_time_seconds ", absl::ToUnixSeconds(identity_.started_at), "\n");
  return out;
}

}  // namespace gateway
