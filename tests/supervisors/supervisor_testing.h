// Shared pieces of the real-supervisor matrix (docs/supervisors.md): a
// scratch directory with copies of the real binaries to hand to a
// supervisor or bind into a container, shell commands with bounded
// timeouts, the gateway's own files (instance.json, last-shutdown.json) and
// one assertion on the stop record that every row makes.
#ifndef TESTS_SUPERVISORS_SUPERVISOR_TESTING_H_
#define TESTS_SUPERVISORS_SUPERVISOR_TESTING_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/harness/harness.h"

namespace gateway::testing {

// A short-pathed scratch directory under /tmp (unix socket paths and
// container binds need short paths, unlike TEST_TMPDIR), removed at the end:
//   bin/gateway, bin/gatewayctl   copies of the real binaries (from runfiles)
//   state/                        a 0700 state directory for the gateway
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& label);
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir();

  const std::string& path() const { return path_; }
  std::string bin() const { return path_ + "/bin"; }
  std::string state() const { return path_ + "/state"; }
  std::string gateway() const { return bin() + "/gateway"; }
  std::string gatewayctl() const { return bin() + "/gatewayctl"; }
  // The gateway with this state directory and an ephemeral admin port (the
  // host's network is shared with other tests), as argv or a command line.
  std::vector<std::string> GatewayArgv() const;
  std::string GatewayCommand() const;
  // Creates `relative` (and its parents) with `text`, mode `mode`.
  void WriteFile(const std::string& relative, const std::string& text, int mode = 0644) const;

 private:
  std::string path_;
};

// Runs `script` with /bin/sh -c in the harness's clean environment.
RunResult Sh(const std::string& script, absl::Duration timeout = absl::Seconds(30));
// Single-quotes `text` for a shell command line.
std::string ShellQuote(const std::string& text);

// The first of `programs` not found on PATH, or nullopt when all are there.
std::optional<std::string> MissingProgram(const std::vector<std::string>& programs);

// Parsed JSON file; null when absent or malformed.
nlohmann::json ReadJson(const std::string& path);

// instance.json of a gateway that started after `after` (its started_at is
// different), once it is there; null after `timeout`.
nlohmann::json WaitForInstance(const std::string& state_dir, const nlohmann::json& after,
                               absl::Duration timeout = absl::Seconds(15));

// last-shutdown.json once it names the run that started at `started_at`
// (instance.json's started_at); null after `timeout`.
nlohmann::json WaitForRecordOf(const std::string& state_dir, const nlohmann::json& instance,
                               absl::Duration timeout = absl::Seconds(15));

// KEY=VALUE lines (systemctl show, s6-svstat -o ...) as a map.
std::map<std::string, std::string> ParseProperties(const std::string& text);

// What a row expects of the gateway's stop record. `detector` empty means
// none decided (null in the record).
struct ExpectedStop {
  std::string stop_class;
  std::string detector;
  int exit_code = 0;
};
// Asserts class, detector and exit_code of `record` (non-fatal, with the
// evidence in the message).
void ExpectStopRecord(const nlohmann::json& record, const ExpectedStop& expected);

// The running test's name, for unit, container and directory names.
std::string CurrentTestName();

}  // namespace gateway::testing

#endif  // TESTS_SUPERVISORS_SUPERVISOR_TESTING_H_
