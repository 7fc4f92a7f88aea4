// See stop_history_metrics.h.
#include "gateway/stop/stop_history_metrics.h"

#include <fcntl.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"

namespace gateway {
namespace {

bool IsRecordedClass(const std::string& name) {
  return name == "takeover" || name == "planned" || name == "unexpected";
}

std::string StringField(const nlohmann::json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || !object[key].is_string()) return std::string();
  return object[key].get<std::string>();
}

// Who a dead run was: "pid/start_time", or empty when not known.
std::string RunKey(const nlohmann::json& pid, const nlohmann::json& start_time) {
  if (!pid.is_number_integer() || !start_time.is_number_integer()) return std::string();
  return absl::StrCat(pid.get<int64_t>(), "/", start_time.get<uint64_t>());
}

const nlohmann::json& Field(const nlohmann::json& object, const char* key) {
  static const nlohmann::json kNull;
  return object.is_object() && object.contains(key) ? object[key] : kNull;
}

}  // namespace

RecordedStops CountRecordedStops(const std::vector<nlohmann::json>& history,
                                 const PreviousRun& own_previous) {
  RecordedStops stops;
  // The same unclean death can be seen twice: the next start appends an
  // "unclean_exit" entry, and that start's own record names it again as
  // previous_run. Count each dead run (pid/start_time) once.
  std::set<std::string> unclean_runs;
  int64_t unclean_unknown = 0;
  auto note_unclean = [&](const std::string& key) {
    if (key.empty()) {
      ++unclean_unknown;
    } else {
      unclean_runs.insert(key);
    }
  };
  for (const nlohmann::json& record : history) {
    if (!record.is_object()) continue;
    std::string kind = StringField(record, "kind");
    if (kind == "unclean_exit") {
      note_unclean(RunKey(Field(record, "pid"), Field(record, "start_time")));
      continue;
    }
    const nlohmann::json& previous = Field(record, "previous_run");
    if (StringField(previous, "exit") == "unclean") {
      note_unclean(RunKey(Field(previous, "pid"), Field(previous, "start_time")));
    } else if (!previous.is_object() && StringField(record, "previous_exit") == "unclean") {
      note_unclean(std::string());
    }
    // A record, or (kind "unrecorded_stop") a stop whose record could not
    // be written, counted by the class it logged.
    std::string stop_class = StringField(record, "class");
    if (!IsRecordedClass(stop_class)) continue;
    std::string detector = StringField(record, "detector");
    ++stops.by_class_and_detector[{stop_class, detector.empty() ? kNoDetectorLabel : detector}];
    std::string exited_at = StringField(record, "exited_at");
    if (!exited_at.empty()) {
      absl::StatusOr<absl::Time> at = ParseTime(exited_at);
      if (at.ok() && (!stops.last_stop_at || *at > *stops.last_stop_at)) stops.last_stop_at = *at;
    }
  }
  if (own_previous.exit == "unclean") {
    note_unclean(own_previous.pid && own_previous.start_time
                     ? absl::StrCat(*own_previous.pid, "/", *own_previous.start_time)
                     : std::string());
  }
  int64_t unclean = static_cast<int64_t>(unclean_runs.size()) + unclean_unknown;
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
