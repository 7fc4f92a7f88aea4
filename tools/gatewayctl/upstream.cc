// gatewayctl upstream: the routes' upstream pools, and their admin state
// for deployment tools (HAProxy's `set server state drain|maint|ready`):
//   gatewayctl upstream list
//   gatewayctl upstream drain|disable|enable ROUTE ADDRESS
// drain: no new connections, the open ones finish; disable: the same, and
// its health checks pause; enable: back in rotation (when healthy). The
// state survives SIGHUP and gatewayctl replace.
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/gatewayctl/commands.h"

namespace gateway::ctl {
namespace {

constexpr absl::Duration kUpstreamTimeout = absl::Seconds(3);

}  // namespace

std::string DescribeUpstream(const nlohmann::json& u, const std::string& indent) {
  std::string line = absl::StrCat(indent, u.value("address", "?"), "  ",
                                  u.value("up", false) ? "up" : "DOWN", ", ",
                                  u.value("admin", "?"));
  if (u.value("weight", 1) != 1) absl::StrAppend(&line, ", weight ", u.value("weight", 1));
  if (u.value("backup", false)) absl::StrAppend(&line, ", backup");
  absl::StrAppend(&line, "; ", u.value("connections_active", 0), " open, ",
                  u.value("connections_total", 0), " total, ", u.value("connect_errors", 0),
                  " connect errors");
  if (u.contains("check") && u["check"].is_object() && u["check"]["last"].is_string()) {
    absl::StrAppend(&line, "; last check: ", u["check"]["last"].get<std::string>());
    if (u["check"]["latency_ms"].is_number()) {
      absl::StrAppend(&line, " (", u["check"]["latency_ms"].get<double>(), " ms)");
    }
  }
  if (u.contains("last_change") && u["last_change"].is_string()) {
    absl::StrAppend(&line, "\n", indent, "    since ", u.value("last_change_at", "?"), ": ",
                    u["last_change"].get<std::string>());
  }
  return line + "\n";
}

int UpstreamCommand(const Invocation& inv) {
  if (inv.args.empty()) {
    return Fail(inv, CommandError{kExitUsage,
                                  "upstream needs: list | drain|disable|enable ROUTE ADDRESS"});
  }
  const std::string& action = inv.args[0];
  nlohmann::json request = {{"cmd", "upstream"}, {"action", action}};
  if (action == "list") {
    if (inv.args.size() != 1) {
      return Fail(inv, CommandError{kExitUsage, absl::StrCat("unexpected argument '", inv.args[1], "'")});
    }
  } else if (action == "drain" || action == "disable" || action == "enable") {
    if (inv.args.size() != 3) {
      return Fail(inv, CommandError{kExitUsage, absl::StrCat("upstream ", action,
                                                             " needs ROUTE ADDRESS")});
    }
    request["route"] = inv.args[1];
    request["address"] = inv.args[2];
  } else {
    return Fail(inv, CommandError{kExitUsage, absl::StrCat("unknown upstream action '", action,
                                                           "' (list, drain, disable, enable)")});
  }
  absl::StatusOr<Located> located = LocateRunning(inv.state_dir);
  if (!located.ok()) return Fail(inv, located.status());
  absl::StatusOr<nlohmann::json> reply = AskGateway(*located->dir, request, kUpstreamTimeout);
  if (!reply.ok()) {
    return Fail(inv, CommandError{kExitFailure,
                                  absl::StrCat("gateway pid ", located->instance->identity.pid,
                                               " did not answer: ", reply.status().message())});
  }
  if (!reply->value("ok", false)) {
    return Fail(inv, CommandError{kExitFailure, reply->value("error", std::string("refused"))});
  }
  std::string text;
  if (action == "list") {
    for (const auto& route : (*reply)["routes"]) {
      absl::StrAppend(&text, "route ", route.value("route", "?"), " (", route.value("balance", "?"),
                      "):\n");
      for (const auto& u : route["upstreams"]) absl::StrAppend(&text, DescribeUpstream(u, "  "));
    }
    if (text.empty()) text = "no routes\n";
  } else {
    absl::StrAppend(&text, "route ", reply->value("route", "?"), ":\n",
                    DescribeUpstream((*reply)["upstream"], "  "));
  }
  reply->erase("ok");
  PrintResult(inv, *reply, text);
  return kExitOk;
}

}  // namespace gateway::ctl
