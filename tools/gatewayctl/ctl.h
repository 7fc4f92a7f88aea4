// Shared pieces of gatewayctl's commands: locating the running instance
// through its state directory, and printing results as text for people or
// JSON for tooling (--json), with one line on stderr for every failure.
#ifndef TOOLS_GATEWAYCTL_CTL_H_
#define TOOLS_GATEWAYCTL_CTL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/stop/instance.h"
#include "gateway/base/state_dir.h"
#include "nlohmann/json.hpp"

namespace gateway::ctl {

// Exit statuses of gatewayctl (documented in docs/gatewayctl.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;     // no instance, permission, timeout
inline constexpr int kExitUsage = 2;       // bad command line
inline constexpr int kExitNotRunning = 3;  // status: no instance (as LSB status)

struct CommandError {
  int exit_code = kExitFailure;
  std::string message;
};

// What every command needs: where to look and how to answer.
struct Invocation {
  std::string state_dir;  // resolved (flag or the gateway's default)
  bool json = false;
  std::vector<std::string> args;  // positional arguments after the command
};

// The state directory and the instance registered in it.
struct Located {
  std::optional<StateDirectory> dir;
  std::optional<InstanceInfo> instance;  // absent when none ever ran here
  bool alive = false;                    // the instance's process runs now
};

// Opens the state directory without creating it and reads instance.json.
absl::StatusOr<Located> Locate(const std::string& state_dir);
// Like Locate, but fails with "no gateway is running" unless one is alive.
absl::StatusOr<Located> LocateRunning(const std::string& state_dir);

// Sends one request to the running gateway's control socket and returns
// its answer; connecting, asking and reading together take at most
// `timeout` (a stopped or wedged gateway is a DeadlineExceeded error).
absl::StatusOr<nlohmann::json> AskGateway(const StateDirectory& dir, const nlohmann::json& request,
                                          absl::Duration timeout);

// Prints the result: `json` with --json, else `text` (ends with newline).
void PrintResult(const Invocation& inv, const nlohmann::json& json, const std::string& text);
// Prints a failure as one line on stderr (and {"error": ...} with --json)
// and returns its exit code.
int Fail(const Invocation& inv, const CommandError& error);
int Fail(const Invocation& inv, const absl::Status& status, int code = kExitFailure);

// True when progress lines may be drawn (stderr is a terminal, not --json).
bool ShowProgress(const Invocation& inv);

// "1h2m3s"-style uptime.
std::string FormatUptime(absl::Duration d);

}  // namespace gateway::ctl

#endif  // TOOLS_GATEWAYCTL_CTL_H_
