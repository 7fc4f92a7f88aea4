// JSON helpers; see json_util.h.
#include "gateway/base/json_util.h"

#include <algorithm>
#include <istream>
#include <limits>
#include <set>
#include <streambuf>
#include <vector>

#include "absl/strings/str_cat.h"

namespace gateway {
namespace {

// Length of the valid UTF-8 sequence at the start of `text`, or 0 when it
// does not start with one (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF).
size_t ValidSequenceLength(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char min_second = 0x80, max_second = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) min_second = 0xA0;  // overlong
    if (lead == 0xED) max_second = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) min_second = 0x90;  // overlong
    if (lead == 0xF4) max_second = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < min_second || byte(1) > max_second) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  while (!text.empty()) {
    size_t n = ValidSequenceLength(text);
    if (n == 0) return false;
    text.remove_prefix(n);
  }
  return true;
}

std::string ValidUtf8(absl::string_view text) {
  if (IsValidUtf8(text)) return std::string(text);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 16);
  while (!text.empty()) {
    size_t n = ValidSequenceLength(text);
    if (n == 0) {
      unsigned char c = static_cast<unsigned char>(text[0]);
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
      n = 1;
    } else {
      out.append(text.data(), n);
    }
    text.remove_prefix(n);
  }
  return out;
}

std::string TruncateUtf8(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  // Back up over continuation bytes to the start of the cut character.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

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

namespace {

// A read-only stream over `text` that knows how far the parser has read.
class CountingBuffer : public std::streambuf {
 public:
  explicit CountingBuffer(const std::string& text) {
    char* begin = const_cast<char*>(text.data());  // only ever read
    setg(begin, begin, begin + text.size());
  }
  size_t consumed() const { return static_cast<size_t>(gptr() - eback()); }
};

// A SAX pass that fails on the first key seen twice in one object and
// records where. nlohmann reports no position for a key, but it calls
// key() right after reading the key's closing quote, so the stream's
// position says where the key is.
class DuplicateKeyFinder : public nlohmann::json_sax<nlohmann::json> {
 public:
  DuplicateKeyFinder(const std::string& text, const CountingBuffer* buffer)
      : text_(text), buffer_(buffer) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (keys_.back().insert(key).second) return true;
    error_ = absl::StrCat("duplicate key '", key, "' at line ", LineAt(buffer_->consumed()));
    return false;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    error_ = absl::StrCat("malformed or truncated JSON at line ", LineAt(position));
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  // The line of the character just before `position` (bytes read so far).
  int LineAt(size_t position) const {
    size_t end = std::min(position > 0 ? position - 1 : 0, text_.size());
    return 1 + static_cast<int>(std::count(text_.begin(), text_.begin() + end, '\n'));
  }

  const std::string& text_;
  const CountingBuffer* buffer_;
  std::vector<std::set<std::string>> keys_;  // one set per open object
  std::string error_;
};

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonObject(const std::string& text) {
  {
    CountingBuffer buffer(text);
    std::istream stream(&buffer);
    DuplicateKeyFinder finder(text, &buffer);
    if (!nlohmann::json::sax_parse(stream, &finder)) {
      return absl::InvalidArgumentError(
          finder.error().empty() ? "malformed or truncated JSON" : finder.error());
    }
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("malformed or truncated JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("JSON is not an object");
  return j;
}

std::optional<int64_t> JsonIntegerIn(const nlohmann::json& value, int64_t min, int64_t max) {
  if (value.is_number_unsigned()) {
    uint64_t u = value.get<uint64_t>();
    if (max < 0 || u > static_cast<uint64_t>(max)) return std::nullopt;
    if (min > 0 && u < static_cast<uint64_t>(min)) return std::nullopt;
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
