// Serialising stop records; see stop_record.h.
#include "gateway/stop_record.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "absl/strings/str_cat.h"
#include "gateway/json_util.h"
#include "gateway/sys.h"
#include "glog/logging.h"

namespace gateway {

nlohmann::ordered_json StopRecordToJson(const StopRecord& r) {
  nlohmann::ordered_json sender = {{"pid", r.signal.sender_pid}, {"uid", r.signal.sender_uid}};
  sender["comm"] = r.sender_comm.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.sender_comm);
  nlohmann::ordered_json previous = {{"exit", r.previous.exit}};
  previous["pid"] = r.previous.pid ? nlohmann::ordered_json(*r.previous.pid) : nlohmann::ordered_json(nullptr);
  previous["class"] = r.previous.stop_class.empty() ? nlohmann::ordered_json(nullptr)
                                                    : nlohmann::ordered_json(r.previous.stop_class);
  nlohmann::ordered_json j = {
      {"version", 1},
      {"class", std::string(StopClassName(r.verdict.stop_class))},
      {"detector", r.verdict.detector.empty() ? nlohmann::ordered_json(nullptr)
                                              : nlohmann::ordered_json(r.verdict.detector)},
      {"evidence", r.verdict.evidence},
      {"signal", SignalName(r.signal.signo)},
      {"si_code", r.signal.code},
      {"sender", sender},
      {"exit_code", r.exit_code},
      {"pid", r.self.pid},
      {"start_time", r.self.start_time_ticks},
      {"boot_id", r.self.boot_id},
      {"phase", std::string(PhaseName(r.phase))},
      {"started_at", FormatRfc3339(r.started_at)},
      {"signal_at", FormatRfc3339(r.signal_at)},
      {"exited_at", FormatRfc3339(r.exited_at)},
      {"drain",
       {{"connections_at_signal", r.drain.connections_at_signal},
        {"closed_at_deadline", r.drain.closed_at_deadline},
        {"skipped", r.drain.skipped.empty() ? nlohmann::ordered_json(nullptr)
                                            : nlohmann::ordered_json(r.drain.skipped)},
        {"duration_ms", absl::ToInt64Milliseconds(r.drain.duration)}}},
      {"shutdown_delay",
       {{"configured_ms", absl::ToInt64Milliseconds(r.shutdown_delay.configured)},
        {"served_ms", absl::ToInt64Milliseconds(r.shutdown_delay.served)},
        {"skipped", r.shutdown_delay.skipped.empty()
                        ? nlohmann::ordered_json(nullptr)
                        : nlohmann::ordered_json(r.shutdown_delay.skipped)}}},
      {"signals_received", r.signals_received},
      {"previous_exit", r.previous.exit},
      {"previous_run", previous},
      {"detectors", r.chain},
      {"ignored_markers", r.ignored_markers},
      {"detector_warnings", r.detector_warnings},
  };
  return j;
}

bool IsRecordOfALaterInstance(const nlohmann::json& existing, const ProcessIdentity& self) {
  absl::StatusOr<ProcessIdentity> writer = IdentityFromJson(existing);
  return writer.ok() && writer->boot_id == self.boot_id &&
         writer->start_time_ticks > self.start_time_ticks;
}

nlohmann::json ReadLastStopRecord(const StateDirectory& dir) {
  absl::StatusOr<std::string> text = dir.Read(kLastShutdownFile);
  if (!text.ok()) return nullptr;
  absl::StatusOr<nlohmann::json> record = ParseJsonObject(*text);
  return record.ok() ? *record : nlohmann::json(nullptr);
}

namespace {

// Holds an flock on the state directory itself (not gateway.lock, the
// instance lock, which a successor cannot take while its predecessor
// drains). Held for the few milliseconds of a record write.
class RecordLock {
 public:
  explicit RecordLock(const StateDirectory& dir) : fd_(dir.fd()) {
    locked_ = RetryOnEintr([&] { return flock(fd_, LOCK_EX); }) == 0;
    if (!locked_) PLOG(WARNING) << "could not lock " << dir.path() << " to write the stop record";
  }
  ~RecordLock() {
    if (locked_) flock(fd_, LOCK_UN);
  }
  RecordLock(const RecordLock&) = delete;
  RecordLock& operator=(const RecordLock&) = delete;

 private:
  int fd_;
  bool locked_ = false;
};

constexpr off_t kHistoryRotateBytes = 1024 * 1024;

}  // namespace

void WriteStopRecord(const StateDirectory& dir, const StopRecord& record) {
  nlohmann::ordered_json json = StopRecordToJson(record);
  RecordLock lock(dir);
  nlohmann::json existing = ReadLastStopRecord(dir);
  if (IsRecordOfALaterInstance(existing, record.self)) {
    LOG(INFO) << "stop record appended to " << dir.PathOf(kStopHistoryFile) << " only: "
              << kLastShutdownFile << " already holds the stop of pid "
              << existing.value("pid", 0) << ", which started after this process";
  } else {
    absl::Status written = dir.WriteAtomically(kLastShutdownFile, json.dump(2) + "\n", 0644);
    if (!written.ok()) {
      // The log is then the only copy: the whole record goes into it.
      LOG(ERROR) << "could not write the stop record: " << written.message()
                 << "; the record: " << json.dump();
    } else {
      LOG(INFO) << "stop record written to " << dir.PathOf(kLastShutdownFile);
    }
  }
  struct stat st;
  if (fstatat(dir.fd(), kStopHistoryFile, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_size > kHistoryRotateBytes) {
    renameat(dir.fd(), kStopHistoryFile, dir.fd(), absl::StrCat(kStopHistoryFile, ".1").c_str());
  }
  UniqueFd history(openat(dir.fd(), kStopHistoryFile,
                          O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!history.valid() || !WriteAll(history.get(), json.dump() + "\n").ok()) {
    PLOG(WARNING) << "could not append to " << dir.PathOf(kStopHistoryFile);
  }
}

namespace {

// Whether `record` was left by `who` (same pid and start time).
bool IsRecordOf(const nlohmann::json& record, const ProcessIdentity& who) {
  absl::StatusOr<ProcessIdentity> writer = IdentityFromJson(record);
  return writer.ok() && writer->pid == who.pid && writer->start_time_ticks == who.start_time_ticks;
}

}  // namespace

std::vector<nlohmann::json> ReadStopHistory(const StateDirectory& dir) {
  std::vector<nlohmann::json> records;
  for (const std::string& name : {absl::StrCat(kStopHistoryFile, ".1"), std::string(kStopHistoryFile)}) {
    absl::StatusOr<std::string> history = dir.Read(name);
    if (!history.ok()) continue;
    std::istringstream lines(*history);
    for (std::string line; std::getline(lines, line);) {
      absl::StatusOr<nlohmann::json> record = ParseJsonObject(line);
      if (record.ok()) records.push_back(*std::move(record));
    }
  }
  return records;
}

nlohmann::json FindStopRecord(const StateDirectory& dir, const ProcessIdentity& who) {
  nlohmann::json last = ReadLastStopRecord(dir);
  if (IsRecordOf(last, who)) return last;
  for (const std::string& name : {std::string(kStopHistoryFile), absl::StrCat(kStopHistoryFile, ".1")}) {
    absl::StatusOr<std::string> history = dir.Read(name);
    if (!history.ok()) continue;
    std::istringstream lines(*history);
    nlohmann::json found;
    for (std::string line; std::getline(lines, line);) {
      absl::StatusOr<nlohmann::json> record = ParseJsonObject(line);
      if (record.ok() && IsRecordOf(*record, who)) found = *record;
    }
    if (!found.is_null()) return found;
  }
  return nullptr;
}

}  // namespace gateway
