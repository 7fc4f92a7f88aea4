// Registration, validation and freezing of detectors; see detector_registry.h.
#include "gateway/stop/detector_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace gateway {
namespace {

struct StaticRegistrations {
  std::vector<DetectorRegistration> list;
  bool frozen = false;
};

StaticRegistrations& Statics() {
  static auto* statics = new StaticRegistrations();
  return *statics;
}

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
  });
}

}  // namespace

namespace internal {
StaticDetectorRegistrar::StaticDetectorRegistrar(const char* name,
                                                 DetectorFactory factory) {
  if (Statics().frozen) {
    // A library loaded after start-up tried to register: order and content
    // of the chain are fixed by then, so refuse loudly instead of ignoring.
    std::fprintf(stderr,
                 "gateway: detector '%s' registered after the registry was frozen\n",
                 name);
    std::_Exit(78);
  }
  Statics().list.push_back({name, std::move(factory), "built-in"});
}
}  // namespace internal

DetectorRegistry::Builder DetectorRegistry::Builder::FromStaticRegistrations() {
  Builder builder;
  std::vector<DetectorRegistration> statics = Statics().list;
  std::sort(statics.begin(), statics.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (auto& registration : statics) builder.Add(std::move(registration));
  return builder;
}

void DetectorRegistry::Builder::Add(DetectorRegistration registration) {
  registrations_.push_back(std::move(registration));
}

absl::StatusOr<DetectorRegistry> DetectorRegistry::Builder::Build() && {
  Statics().frozen = true;
  DetectorRegistry registry;
  std::set<std::string> seen;
  for (DetectorRegistration& registration : registrations_) {
    const std::string& name = registration.name;
    if (!IsValidName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "detector name '", name, "' from ", registration.origin,
          " is invalid: use 1-64 characters from a-z, 0-9, '_' and '-'"));
    }
    if (!seen.insert(name).second) {
      const DetectorRegistration* first = registry.Find(name);
      return absl::InvalidArgumentError(absl::StrCat(
          "detector '", name, "' is registered twice (", first->origin, " and ",
          registration.origin, ")"));
    }
    std::unique_ptr<StopReasonDetector> probe =
        registration.factory ? registration.factory() : nullptr;
    if (probe == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "detector '", name, "' from ", registration.origin, " could not be created"));
    }
    if (probe->name() != name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "detector registered as '", name, "' from ", registration.origin,
          " calls itself '", std::string(probe->name()), "'"));
    }
    registry.registrations_.push_back(std::move(registration));
  }
  return registry;
}

std::vector<std::string> DetectorRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& registration : registrations_) names.push_back(registration.name);
  return names;
}

bool DetectorRegistry::Contains(const std::string& name) const {
  return Find(name) != nullptr;
}

const DetectorRegistration* DetectorRegistry::Find(const std::string& name) const {
  for (const auto& registration : registrations_) {
    if (registration.name == name) return &registration;
  }
  return nullptr;
}

absl::StatusOr<std::vector<std::unique_ptr<StopReasonDetector>>>
DetectorRegistry::MakeChain(const std::vector<std::string>& names) const {
  if (names.empty()) {
    return absl::InvalidArgumentError("--detectors is empty: name at least one detector");
  }
  std::vector<std::unique_ptr<StopReasonDetector>> chain;
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (name.empty()) {
      return absl::InvalidArgumentError("--detectors has an empty name (two commas?)");
    }
    const DetectorRegistration* registration = Find(name);
    if (registration == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown detector '", name, "' in --detectors; known: ",
          absl::StrJoin(Names(), ",")));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("detector '", name, "' is listed twice in --detectors"));
    }
    chain.push_back(registration->factory());
  }
  return chain;
}

const std::vector<std::string>& DefaultDetectorOrder() {
  static const auto* order = new std::vector<std::string>{
      "takeover_marker", "planned_stop_file", "systemd",
      "container_pid1",  "supervisor",        "interactive",
  };
  return *order;
}

std::vector<std::string> SplitDetectorList(const std::string& text) {
  std::vector<std::string> names;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    names.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return names;
}

}  // namespace gateway
