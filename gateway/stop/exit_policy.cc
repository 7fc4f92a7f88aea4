// The exit policy table; see exit_policy.h.
#include "gateway/stop/exit_policy.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gateway {

ExitPolicy::ExitPolicy()
    : codes_{{StopClass::kTakeover, 0}, {StopClass::kPlanned, 0}, {StopClass::kUnexpected, 1}} {}

absl::StatusOr<ExitPolicy> ExitPolicy::Parse(const std::string& text) {
  ExitPolicy policy;
  std::set<StopClass> seen;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(entry, '=');
    absl::string_view name = absl::StripAsciiWhitespace(kv.first);
    absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    std::optional<StopClass> stop_class = ParseStopClass(name);
    if (!stop_class) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--exit_codes: unknown class '", name, "' (use takeover, planned, unexpected)"));
    }
    int code = -1;
    if (!absl::SimpleAtoi(value, &code) || code < 0 || code > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--exit_codes: '", entry, "' needs an exit code from 0 to 255"));
    }
    if (!seen.insert(*stop_class).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--exit_codes: class '", name, "' is given twice"));
    }
    policy.codes_[*stop_class] = code;
  }
  return policy;
}

int ExitPolicy::ExitCodeFor(StopClass stop_class) const { return codes_.at(stop_class); }

std::string ExitPolicy::ToString() const {
  return absl::StrCat("takeover=", codes_.at(StopClass::kTakeover),
                      ",planned=", codes_.at(StopClass::kPlanned),
                      ",unexpected=", codes_.at(StopClass::kUnexpected));
}

}  // namespace gateway
