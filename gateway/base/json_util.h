// Small JSON helpers shared by records, markers, the instance file and
// gatewayctl, so every file the gateway writes uses one time format and one
// way of parsing untrusted text.
#ifndef GATEWAY_BASE_JSON_UTIL_H_
#define GATEWAY_BASE_JSON_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"
#include "nlohmann/json.hpp"

namespace gateway {

// Untrusted bytes (process names, command lines, the environment, paths)
// become valid UTF-8 here, once, where they enter, so no JSON serialiser
// deeper down can throw on them (nlohmann's dump() throws type_error.316 on
// invalid UTF-8). Each byte that is not part of a valid sequence becomes
// the four characters "\xNN" (lower-case hex): visible in records and logs,
// and the rest of the text is kept as it was.
bool IsValidUtf8(absl::string_view text);
std::string ValidUtf8(absl::string_view text);
// At most `max_bytes` of `text`, cut at a character boundary.
std::string TruncateUtf8(absl::string_view text, size_t max_bytes);

// dump() that never throws: the last line of defence behind ValidUtf8 for
// every file and reply the gateway and gatewayctl write. Invalid UTF-8
// that got this far anyway becomes U+FFFD.
template <typename Json>
std::string DumpJson(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// RFC 3339 in UTC with milliseconds: "2026-11-25T12:00:00.123Z".
std::string FormatRfc3339(absl::Time t);
// Parses RFC 3339 (any offset, optional fraction).
absl::StatusOr<absl::Time> ParseTime(const std::string& text);

// Parses text that must be one JSON object; never throws. A key that
// appears twice in one object is an error ("duplicate key 'listen' at line
// 4"), not last-wins: an operator who wrote it twice meant one of them.
// Malformed text says where: "malformed or truncated JSON at line 3".
absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& text);

// An integer JSON value within [min, max], or nullopt. nlohmann's get<int>()
// silently wraps 2^32 + N to N, which would let a file name another pid
// than its JSON says.
std::optional<int64_t> JsonIntegerIn(const nlohmann::json& value, int64_t min, int64_t max);
// j[name] when j is an object and that field is a string, else "" (where
// nlohmann's value() would throw on a mistyped field).
template <typename Json>
std::string JsonString(const Json& j, const char* name) {
  if (!j.is_object()) return std::string();
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->template get<std::string>() : std::string();
}
// A JSON value that is a valid pid (1 .. the largest pid_t), or nullopt.
std::optional<pid_t> JsonPid(const nlohmann::json& value);

nlohmann::json IdentityToJson(const ProcessIdentity& identity);
// Reads {"pid", "start_time", "boot_id"}; fails on a missing, mistyped or
// out-of-range field.
absl::StatusOr<ProcessIdentity> IdentityFromJson(const nlohmann::json& j);

}  // namespace gateway

#endif  // GATEWAY_BASE_JSON_UTIL_H_
