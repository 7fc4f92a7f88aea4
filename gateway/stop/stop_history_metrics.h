// Stops as monitoring sees them across restarts. The process that stops is
// gone before Prometheus scrapes it again, so its own gateway_stops_total
// rarely reaches a dashboard; the next instance exports what the state
// directory's stop history knows instead: recorded stops by class and
// detector, runs that died without a record ("unclean"), and when the last
// recorded stop happened.
#ifndef GATEWAY_STOP_STOP_HISTORY_METRICS_H_
#define GATEWAY_STOP_STOP_HISTORY_METRICS_H_

#include <sys/stat.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gateway/base/state_dir.h"
#include "gateway/stop/stop_record.h"
#include "nlohmann/json.hpp"

namespace gateway {

inline constexpr char kUncleanStopClass[] = "unclean";
inline constexpr char kNoDetectorLabel[] = "none";

struct RecordedStops {
  // (class, detector) -> count; detector "none" when no detector decided.
  // Class "unclean" (detector "none"): runs that left no record, counted
  // from each record's previous_exit and from this run's own previous run.
  std::map<std::pair<std::string, std::string>, int64_t> by_class_and_detector;
  // exited_at of the newest record, if any record has one.
  std::optional<absl::Time> last_stop_at;
};

// Counts `history` (ReadStopHistory, oldest first) plus this run's own
// previous run. An unclean death is seen by the start after it, which
// appends an "unclean_exit" entry and names it again as its own record's
// previous_run; each dead run (pid and start time) counts once. A stop
// whose record could not be written ("unrecorded_stop") counts under the
// class it logged. Records with a class other than takeover, planned or
// unexpected are not counted.
RecordedStops CountRecordedStops(const std::vector<nlohmann::json>& history,
                                 const PreviousRun& own_previous);

// Reads the history again only when one of its files changed (a
// predecessor that retires after its successor started appends its
// takeover later), so a scrape costs two fstatat calls. Thread-safe.
class StopHistoryMetrics {
 public:
  StopHistoryMetrics(const StateDirectory* dir, PreviousRun own_previous)
      : dir_(dir), own_previous_(std::move(own_previous)) {}

  RecordedStops Current();

 private:
  struct FileVersion {
    bool exists = false;
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileVersion& o) const {
      return exists == o.exists && inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  std::vector<FileVersion> Versions() const;

  const StateDirectory* dir_;
  const PreviousRun own_previous_;
  std::mutex mu_;
  std::optional<std::vector<FileVersion>> seen_;  // guarded by mu_
  RecordedStops stops_;                           // guarded by mu_
};

}  // namespace gateway

#endif  // GATEWAY_STOP_STOP_HISTORY_METRICS_H_
