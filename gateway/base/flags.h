// Command-line parsing for the gateway and gatewayctl on top of gflags'
// flag registry, with our own error handling: an unknown flag or a bad value
// is one clear line on stderr and a documented exit status (gflags itself
// would exit 1, which a supervisor reads as an unexpected stop).
#ifndef GATEWAY_BASE_FLAGS_H_
#define GATEWAY_BASE_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace gateway {

struct ParsedCommandLine {
  std::vector<std::string> positional;
  bool help = false;
};

// Makes a string flag accumulate: "--route=a --route=b" sets it to "a,b".
// Call it from a static initialiser next to the DEFINE_string.
struct RepeatableFlag {
  explicit RepeatableFlag(const char* name);
};

// Applies every --flag[=value] in argv[1..] to the gflags registry and
// returns the other arguments in order. "--" ends the flags.
absl::StatusOr<ParsedCommandLine> ParseCommandLine(int argc, char** argv);

// Prints `usage` and the flags defined in files whose path contains one of
// `path_substrings`, with their defaults and help text.
void PrintUsage(const std::string& usage, const std::vector<std::string>& path_substrings);

// Parses a duration flag value such as "30s", "1m30s" or "500ms"; it must be
// positive or zero.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag,
                                                 const std::string& value);

}  // namespace gateway

#endif  // GATEWAY_BASE_FLAGS_H_
