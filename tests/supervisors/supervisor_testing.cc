// See supervisor_testing.h.
#include "tests/supervisors/supervisor_testing.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace gateway::testing {

ScratchDir::ScratchDir(const std::string& label) {
  std::string pattern = absl::StrCat("/tmp/gwsup-", label, "-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
    return;
  }
  path_ = pattern;
  RunResult copy = Sh(absl::StrCat("mkdir -p ", bin(), " && mkdir -m 0700 ", state(), " && cp -L ",
                                   ShellQuote(Runfile("gateway/gateway")), " ",
                                   ShellQuote(Runfile("tools/gatewayctl/gatewayctl")), " ", bin(),
                                   "/ && chmod 0755 ", path_));
  EXPECT_EQ(copy.status.code, 0) << "copying the binaries: " << copy.err;
}

ScratchDir::~ScratchDir() {
  if (!path_.empty() && std::getenv("GWSUP_KEEP") == nullptr) Sh("rm -rf " + ShellQuote(path_));
}

std::vector<std::string> ScratchDir::GatewayArgv() const {
  return {gateway(), "--state_dir=" + state(), "--admin=127.0.0.1:0"};
}

std::string ScratchDir::GatewayCommand() const { return absl::StrJoin(GatewayArgv(), " "); }

void ScratchDir::WriteFile(const std::string& relative, const std::string& text, int mode) const {
  std::string path = path_ + "/" + relative;
  Sh("mkdir -p " + ShellQuote(path.substr(0, path.rfind('/'))));
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

RunResult Sh(const std::string& script, absl::Duration timeout) {
  RunResult result = RunCommand({"/bin/sh", "-c", script}, BaseEnvironment(), timeout);
  if (result.status.timed_out) {
    ADD_FAILURE() << "timed out after " << absl::FormatDuration(timeout) << ": " << script;
  }
  return result;
}

std::optional<std::string> MissingProgram(const std::vector<std::string>& programs) {
  for (const std::string& program : programs) {
    if (Sh("command -v " + ShellQuote(program) + " >/dev/null").status.code != 0) return program;
  }
  return std::nullopt;
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadText(path), nullptr, false);
}

namespace {

std::string StartedAt(const nlohmann::json& instance) {
  return instance.is_object() ? instance.value("started_at", "") : "";
}

}  // namespace

nlohmann::json WaitForInstance(const std::string& state_dir, const nlohmann::json& after,
                               absl::Duration timeout) {
  nlohmann::json instance;
  bool found = WaitFor(
      [&] {
        // A restart writes instance.json before `running`; wait for both.
        instance = ReadJson(state_dir + "/instance.json");
        return instance.is_object() && Exists(state_dir + "/running") &&
               StartedAt(instance) != StartedAt(after);
      },
      timeout);
  return found ? instance : nlohmann::json();
}

nlohmann::json WaitForRecordOf(const std::string& state_dir, const nlohmann::json& instance,
                               absl::Duration timeout) {
  nlohmann::json record;
  bool found = WaitFor(
      [&] {
        record = ReadJson(state_dir + "/last-shutdown.json");
        return record.is_object() && record.value("started_at", "") == StartedAt(instance);
      },
      timeout);
  return found ? record : nlohmann::json();
}

std::map<std::string, std::string> ParseProperties(const std::string& text) {
  std::map<std::string, std::string> properties;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    properties[std::string(absl::StripAsciiWhitespace(kv.first))] =
        std::string(absl::StripAsciiWhitespace(kv.second));
  }
  return properties;
}

void ExpectStopRecord(const nlohmann::json& record, const ExpectedStop& expected) {
  ASSERT_TRUE(record.is_object()) << "no stop record for this run";
  std::string evidence = record.value("evidence", "");
  EXPECT_EQ(record.value("class", ""), expected.stop_class) << evidence;
  if (expected.detector.empty()) {
    EXPECT_TRUE(record["detector"].is_null()) << record["detector"] << ": " << evidence;
  } else {
    EXPECT_EQ(record["detector"], expected.detector) << evidence;
  }
  EXPECT_EQ(record.value("exit_code", -1), expected.exit_code) << evidence;
}

std::string CurrentTestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

}  // namespace gateway::testing
