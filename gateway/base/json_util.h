// Small JSON helpers shared by records, markers, the instance file and
// gatewayctl, so every file the gateway writes uses one time format and one
// way of parsing untrusted text.
#ifndef GATEWAY_BASE_JSON_UTIL_H_
#define GATEWAY_BASE_JSON_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"
#include "nlohmann/json.hpp"

namespace gateway {

// RFC 3339 in UTC with milliseconds: "2026-11-25T12:00:00.123Z".
std::string FormatRfc3339(absl::Time t);
// Parses RFC 3339 (any offset, optional fraction).
absl::StatusOr<absl::Time> ParseTime(const std::string& text);

// Parses text that must be one JSON object; never throws.
absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& text);

// An integer JSON value within [min, max], or nullopt. nlohmann's get<int>()
// silently wraps 2^32 + N to N, which would let a file name another pid
// than its JSON says.
std::optional<int64_t> JsonIntegerIn(const nlohmann::json& value, int64_t min, int64_t max);
// A JSON value that is a valid pid (1 .. the largest pid_t), or nullopt.
std::optional<pid_t> JsonPid(const nlohmann::json& value);

nlohmann::json IdentityToJson(const ProcessIdentity& identity);
// Reads {"pid", "start_time", "boot_id"}; fails on a missing, mistyped or
// out-of-range field.
absl::StatusOr<ProcessIdentity> IdentityFromJson(const nlohmann::json& j);

}  // namespace gateway

#endif  // GATEWAY_BASE_JSON_UTIL_H_
