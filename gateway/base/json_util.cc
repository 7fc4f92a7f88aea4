// JSON helpers; see json_util.h.
#include "gateway/base/json_util.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace gateway {

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseTime(const std::string& text) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, absl::UTCTimeZone(), &t, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("bad time '", text, "': ", error));
  }
  return t;
}

absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("malformed or truncated JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("JSON is not an object");
  return j;
}

std::optional<int64_t> JsonIntegerIn(const nlohmann::json& value, int64_t min, int64_t max) {
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (max < 0 || u > static_cast<uint64_t>(max)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (!value.is_number_integer()) return std::nullopt;
  int64_t v = value.get<int64_t>();
  if (v < min || v > max) return std::nullopt;
  return v;
}

std::optional<pid_t> JsonPid(const nlohmann::json& value) {
  std::optional<int64_t> pid = JsonIntegerIn(value, 1, std::numeric_limits<pid_t>::max());
  if (!pid) return std::nullopt;
  return static_cast<pid_t>(*pid);
}

nlohmann::json IdentityToJson(const ProcessIdentity& identity) {
  return {{"pid", identity.pid},
          {"start_time", identity.start_time_ticks},
          {"boot_id", identity.boot_id}};
}

absl::StatusOr<ProcessIdentity> IdentityFromJson(const nlohmann::json& j) {
  std::optional<pid_t> pid = j.is_object() && j.contains("pid") ? JsonPid(j["pid"]) : std::nullopt;
  if (!pid || !j.contains("start_time") || !j["start_time"].is_number_unsigned() ||
      !j.contains("boot_id") || !j["boot_id"].is_string()) {
    return absl::InvalidArgumentError("identity needs pid, start_time and boot_id");
  }
  ProcessIdentity identity;
  identity.pid = *pid;
  identity.start_time_ticks = j["start_time"].get<uint64_t>();
  identity.boot_id = j["boot_id"].get<std::string>();
  return identity;
}

}  // namespace gateway
