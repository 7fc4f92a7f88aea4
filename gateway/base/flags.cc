// Command-line parsing; see flags.h.
#include "gateway/base/flags.h"

#include <cstdio>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gateway/base/json_util.h"
#include "gflags/gflags.h"

namespace gateway {
namespace {
std::set<std::string>& RepeatableFlags() {
  static auto* names = new std::set<std::string>();
  return *names;
}
}  // namespace

RepeatableFlag::RepeatableFlag(const char* name) { RepeatableFlags().insert(name); }

namespace {

// Flag values and arguments end up in records, instance.json and JSON
// replies: bytes that are not text are refused here, where they enter,
// with one line.
absl::Status NotUtf8(absl::string_view what, absl::string_view value) {
  return absl::InvalidArgumentError(absl::StrCat(
      what, "'", ValidUtf8(value),
      "' is not valid UTF-8 (invalid bytes shown as \\xNN); command-line values must be UTF-8"));
}

}  // namespace

absl::StatusOr<ParsedCommandLine> ParseCommandLine(int argc, char** argv) {
  ParsedCommandLine parsed;
  std::set<std::string> seen;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg(argv[i]);
    if (arg == "--") {
      for (++i; i < argc; ++i) {
        if (!IsValidUtf8(argv[i])) return NotUtf8("argument ", argv[i]);
        parsed.positional.emplace_back(argv[i]);
      }
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      if (!IsValidUtf8(arg)) return NotUtf8("argument ", arg);
      parsed.positional.emplace_back(arg);
      continue;
    }
    absl::ConsumePrefix(&arg, "-");
    absl::ConsumePrefix(&arg, "-");
    std::string name(arg.substr(0, arg.find('=')));
    std::optional<std::string> value;
    if (arg.find('=') != absl::string_view::npos) value = std::string(arg.substr(arg.find('=') + 1));
    if (name == "help" || name == "helpfull" || name == "h") {
      parsed.help = true;
      continue;
    }
    gflags::CommandLineFlagInfo info;
    bool known = gflags::GetCommandLineFlagInfo(name.c_str(), &info);
    if (!known && !value && absl::StartsWith(name, "no")) {
      // --nofoo for a boolean --foo.
      gflags::CommandLineFlagInfo negated;
      if (gflags::GetCommandLineFlagInfo(name.substr(2).c_str(), &negated) &&
          negated.type == "bool") {
        gflags::SetCommandLineOption(negated.name.c_str(), "false");
        continue;
      }
    }
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", ValidUtf8(name), " (see --help)"));
    }
    if (!value) {
      if (info.type == "bool") {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (!IsValidUtf8(*value)) return NotUtf8(absl::StrCat("flag --", name, ": "), *value);
    if (RepeatableFlags().count(info.name) > 0 && !seen.insert(info.name).second) {
      std::string current;
      gflags::GetCommandLineOption(info.name.c_str(), &current);
      if (!current.empty() && !value->empty()) value = current + "," + *value;
    }
    if (gflags::SetCommandLineOption(name.c_str(), value->c_str()).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("bad value '", *value, "' for --", name,
                                                     " (a ", info.type, " is expected)"));
    }
  }
  return parsed;
}

void PrintUsage(const std::string& usage, const std::vector<std::string>& path_substrings) {
  std::printf("%s\n\nFlags:\n", usage.c_str());
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);
  for (const auto& flag : flags) {
    bool ours = false;
    for (const auto& part : path_substrings) ours |= absl::StrContains(flag.filename, part);
    if (!ours) continue;
    std::printf("  --%s (%s; default \"%s\")\n      %s\n", flag.name.c_str(), flag.type.c_str(),
                flag.default_value.c_str(), flag.description.c_str());
  }
}

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag,
                                                 const std::string& value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad duration '", value, "' for --", flag, " (use e.g. 30s, 1m30s, 500ms)"));
  }
  return d;
}

}  // namespace gateway
