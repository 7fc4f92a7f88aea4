// See ctl.h.
#include "tools/gatewayctl/ctl.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "gateway/ops/control_server.h"

namespace gateway::ctl {

absl::StatusOr<Located> Locate(const std::string& state_dir) {
  absl::StatusOr<StateDirectory> dir = StateDirectory::OpenExisting(state_dir);
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status())) {
      return absl::NotFoundError(absl::StrCat("no gateway has run with state directory ",
                                              state_dir, " (it does not exist)"));
    }
    return dir.status();
  }
  Located located;
  located.dir.emplace(std::move(*dir));
  absl::StatusOr<InstanceInfo> instance = ReadInstanceInfo(*located.dir);
  if (instance.ok()) {
    located.instance = *instance;
    located.alive = IsAlive(instance->identity);
  } else if (!absl::IsNotFound(instance.status())) {
    return instance.status();
  }
  return located;
}

absl::StatusOr<Located> LocateRunning(const std::string& state_dir) {
  absl::StatusOr<Located> located = Locate(state_dir);
  if (!located.ok()) return located.status();
  if (!located->alive) {
    std::string last = located->instance
                           ? absl::StrCat(" (last instance: pid ", located->instance->identity.pid, ")")
                           : std::string();
    return absl::NotFoundError(
        absl::StrCat("no gateway is running with state directory ", state_dir, last));
  }
  return located;
}

absl::StatusOr<nlohmann::json> AskGateway(const StateDirectory& dir, const nlohmann::json& request,
                                          absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<UniqueFd> control = ConnectControl(dir.PathOf(kControlSocket), timeout);
  if (!control.ok()) return control.status();
  absl::Status sent = WriteControlLine(control->get(), request, deadline - absl::Now());
  if (!sent.ok()) return sent;
  return ReadControlLine(control->get(), deadline - absl::Now());
}

void PrintResult(const Invocation& inv, const nlohmann::json& json, const std::string& text) {
  if (inv.json) {
    std::printf("%s\n", DumpJson(json).c_str());
  } else {
    std::printf("%s", text.c_str());
  }
  std::fflush(stdout);
}

int Fail(const Invocation& inv, const CommandError& error) {
  std::fprintf(stderr, "gatewayctl: %s\n", error.message.c_str());
  if (inv.json) {
    std::printf("%s\n", DumpJson(nlohmann::json{{"error", error.message}}).c_str());
  }
  return error.exit_code;
}

int Fail(const Invocation& inv, const absl::Status& status, int code) {
  return Fail(inv, CommandError{code, std::string(status.message())});
}

bool ShowProgress(const Invocation& inv) { return !inv.json && isatty(STDERR_FILENO); }

std::string FormatUptime(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Seconds(1)));
}

}  // namespace gateway::ctl
