// The matrix rows for PID 1 of a PID namespace (SPEC 7): the gateway itself
// as PID 1 (`unshare --pid --fork --mount-proc`), and behind the init shims
// tini and dumb-init. A stop signal from outside the namespace (what a
// container runtime sends) is planned, exit 0, and the shim passes the
// status on.
#include <signal.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/supervisors/supervisor_testing.h"

namespace gateway::testing {
namespace {

struct InitShim {
  std::string name;
  std::vector<std::string> argv;  // before the gateway's own; empty: none
};

// Names the parameter in test output and test.xml.
void PrintTo(const InitShim& shim, std::ostream* os) { *os << shim.name; }

class Pid1Test : public ::testing::TestWithParam<InitShim> {};

TEST_P(Pid1Test, SignalFromOutsideTheNamespaceIsPlanned) {
  const InitShim& shim = GetParam();
  std::vector<std::string> programs = {"unshare", "pgrep"};
  if (!shim.argv.empty()) programs.push_back(shim.argv[0]);
  if (auto missing = MissingProgram(programs)) {
    GTEST_SKIP() << *missing << " is not installed (./bazelw installs it)";
  }
  if (Sh("unshare --pid --fork --mount-proc true").status.code != 0) {
    GTEST_SKIP() << "this machine cannot create PID namespaces (unshare --pid failed)";
  }
  ScratchDir dir(shim.name);
  Child::Options options;
  options.argv = {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc"};
  for (const std::string& arg : shim.argv) options.argv.push_back(arg);
  for (const std::string& arg : dir.GatewayArgv()) options.argv.push_back(arg);
  options.env = BaseEnvironment();
  options.output_dir = dir.path();
  Child unshare(options);
  nlohmann::json instance = WaitForInstance(dir.state(), nullptr);
  ASSERT_TRUE(instance.is_object()) << unshare.Stderr();
  // The namespace's PID 1 (the gateway, or the shim) as the host sees it.
  pid_t init = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      absl::StripAsciiWhitespace(Sh(absl::StrCat("pgrep -P ", unshare.pid())).out), &init));

  SignalFromSibling(init, SIGTERM);
  ExitStatus status = unshare.Wait(absl::Seconds(15));
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << unshare.Stderr();
  nlohmann::json record = WaitForRecordOf(dir.state(), instance);
  ExpectStopRecord(record, {"planned", "container_pid1", 0});
  EXPECT_EQ(record.value("pid", 0), shim.argv.empty() ? 1 : 2) << "pid inside the namespace";
  if (!shim.argv.empty()) {
    EXPECT_TRUE(absl::StrContains(record.value("evidence", ""), shim.argv[0]))
        << record.value("evidence", "");
  }
}

INSTANTIATE_TEST_SUITE_P(Inits, Pid1Test,
                         ::testing::Values(InitShim{"unshare", {}},
                                           InitShim{"tini", {"tini", "--"}},
                                           InitShim{"dumb_init", {"dumb-init"}}),
                         [](const ::testing::TestParamInfo<InitShim>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace gateway::testing
