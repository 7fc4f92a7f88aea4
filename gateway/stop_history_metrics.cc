// See stop_history_metrics.h.
#include "gateway/stop_history_metrics.h"

#include <fcntl.h>

#include "absl/strings/str_cat.h"
#include "gateway/json_util.h"

namespace gateway {
namespace {

bool IsRecordedClass(const std::string& name) {
  return name == "takeover" || name == "planned" || name == "unexpected";
}

}  // namespace

RecordedStops CountRecordedStops(const std::vector<nlohmann::json>& history,
                                 const PreviousRun& own_previous) {
  RecordedStops stops;
  int64_t unclean = own_previous.exit == "unclean" ? 1 : 0;
  for (const nlohmann::json& record : history) {
    if (!record.is_object()) continue;
    const nlohmann::json& previous_exit = record.contains("previous_exit") ? record["previous_exit"] : nullptr;
    if (previous_exit.is_string() && previous_exit.get<std::string>() == "unclean") ++unclean;
    if (!record.contains("class") || !record["class"].is_string()) continue;
    std::string stop_class = record["class"].get<std::string>();
    if (!IsRecordedClass(stop_class)) continue;
    const nlohmann::json& detector = record.contains("detector") ? record["detector"] : nullptr;
    std::string detector_label =
        detector.is_string() && !detector.get<std::string>().empty() ? detector.get<std::string>()
                                                                     : kNoDetectorLabel;
    ++stops.by_class_and_detector[{stop_class, detector_label}];
    if (record.contains("exited_at") && record["exited_at"].is_string()) {
      absl::StatusOr<absl::Time> at = ParseTime(record["exited_at"].get<std::string>());
      if (at.ok() && (!stops.last_stop_at || *at > *stops.last_stop_at)) stops.last_stop_at = *at;
    }
  }
  if (unclean > 0) stops.by_class_and_detector[{kUncleanStopClass, kNoDetectorLabel}] = unclean;
  return stops;
}

std::vector<StopHistoryMetrics::FileVersion> StopHistoryMetrics::Versions() const {
  std::vector<FileVersion> versions;
  for (const std::string& name :
       {absl::StrCat(kStopHistoryFile, ".1"), std::string(kStopHistoryFile)}) {
    FileVersion version;
    struct stat st;
    if (fstatat(dir_->fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      version.exists = true;
      version.inode = st.st_ino;
      version.size = st.st_size;
      version.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    }
    versions.push_back(version);
  }
  return versions;
}

RecordedStops StopHistoryMetrics::Current() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<FileVersion> now = Versions();
  if (!seen_ || !(*seen_ == now)) {
    stops_ = CountRecordedStops(ReadStopHistory(*dir_), own_previous_);
    seen_ = now;
  }
  return stops_;
}

}  // namespace gateway
