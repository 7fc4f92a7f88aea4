// Serialising stop records; see stop_record.h.
#include "gateway/stop/stop_record.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"
#include "glog/logging.h"

namespace gateway {
namespace {

nlohmann::ordered_json StringOrNull(const std::string& s) {
  return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s);
}

template <typename T>
nlohmann::ordered_json OptionalOrNull(const std::optional<T>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

}  // namespace

nlohmann::ordered_json PreviousRunToJson(const PreviousRun& p) {
  return {
      {"exit", p.exit},
      {"pid", OptionalOrNull(p.pid)},
      {"class", StringOrNull(p.stop_class)},
      {"start_time", OptionalOrNull(p.start_time)},
      {"boot_id", StringOrNull(p.boot_id)},
      {"started_at", StringOrNull(p.started_at)},
      {"detector", StringOrNull(p.detector)},
      {"exit_code", OptionalOrNull(p.exit_code)},
      {"last_alive_at", StringOrNull(p.last_alive_at)},
      {"record_error", StringOrNull(p.record_error)},
  };
}

PreviousRun PreviousRunFromJson(const nlohmann::json& j) {
  PreviousRun p;
  if (!j.is_object()) return p;
  auto text = [&](const char* name) { return JsonString(j, name); };
  if (std::string exit = text("exit"); !exit.empty()) p.exit = exit;
  if (j.contains("pid")) p.pid = JsonPid(j["pid"]);
  if (j.contains("start_time") && j["start_time"].is_number_unsigned()) {
    p.start_time = j["start_time"].get<uint64_t>();
  }
  if (j.contains("exit_code")) {
    if (std::optional<int64_t> code = JsonIntegerIn(j["exit_code"], 0, 255)) {
      p.exit_code = static_cast<int>(*code);
    }
  }
  p.stop_class = text("class");
  p.boot_id = text("boot_id");
  p.started_at = text("started_at");
  p.detector = text("detector");
  p.last_alive_at = text("last_alive_at");
  p.record_error = text("record_error");
  return p;
}

std::string DescribePreviousRun(const PreviousRun& p, absl::string_view which) {
  std::string who = absl::StrCat(which, p.pid ? absl::StrCat(" (pid ", *p.pid, ")") : "");
  std::string started = p.started_at.empty() ? "" : absl::StrCat("; it started at ", p.started_at);
  if (p.exit == "unclean") {
    return absl::StrCat(who,
                        " did not exit cleanly: it left its running sentinel and no stop record "
                        "(SIGKILL, OOM kill or crash)",
                        started);
  }
  if (p.exit == "unrecorded") {
    return absl::StrCat(
        who, " stopped, its record could not be written: ", p.record_error,
        "; class as logged: ", p.stop_class.empty() ? "?" : p.stop_class, " (",
        p.detector.empty() ? "no detector" : p.detector,
        p.exit_code ? absl::StrCat(", exit ", *p.exit_code) : "",
        p.last_alive_at.empty() ? "" : absl::StrCat(", at ", p.last_alive_at), ")");
  }
  if (p.exit == "clean") {
    return absl::StrCat(who, " stopped cleanly as ", p.stop_class.empty() ? "?" : p.stop_class);
  }
  return std::string();
}

nlohmann::ordered_json PreviousRunHistoryEntry(const PreviousRun& p, absl::Time reported_at,
                                               std::optional<pid_t> reported_by) {
  bool unrecorded = p.exit == "unrecorded";
  return {
      {"version", 1},
      {"kind", unrecorded ? "unrecorded_stop" : "unclean_exit"},
      {"class", unrecorded ? StringOrNull(p.stop_class) : nullptr},
      {"detector", unrecorded ? StringOrNull(p.detector) : nullptr},
      {"evidence", DescribePreviousRun(p, "this run")},
      {"exit_code", unrecorded ? OptionalOrNull(p.exit_code) : nullptr},
      {"pid", OptionalOrNull(p.pid)},
      {"start_time", OptionalOrNull(p.start_time)},
      {"boot_id", StringOrNull(p.boot_id)},
      {"started_at", StringOrNull(p.started_at)},
      {"exited_at", StringOrNull(p.last_alive_at)},
      {"record_error", StringOrNull(p.record_error)},
      {"reported_at", FormatRfc3339(reported_at)},
      {"reported_by", OptionalOrNull(reported_by)},
  };
}

nlohmann::ordered_json StopRecordToJson(const StopRecord& r) {
  nlohmann::ordered_json sender = {{"pid", r.signal.sender_pid}, {"uid", r.signal.sender_uid}};
  sender["comm"] = r.sender_comm.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.sender_comm);
  nlohmann::ordered_json previous = PreviousRunToJson(r.previous);
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

// Appends `line` (ends with '\n') whole or not at all. Callers hold the
// record lock, so nothing else appends meanwhile.
absl::Status AppendHistoryLine(const StateDirectory& dir, std::string line) {
  struct stat st;
  if (fstatat(dir.fd(), kStopHistoryFile, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_size > kHistoryRotateBytes) {
    renameat(dir.fd(), kStopHistoryFile, dir.fd(), absl::StrCat(kStopHistoryFile, ".1").c_str());
  }
  UniqueFd history(RetryOnEintr([&] {
    return openat(dir.fd(), kStopHistoryFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  }));
  if (!history.valid()) {
    return ErrnoStatus(errno, absl::StrCat("open ", dir.PathOf(kStopHistoryFile)));
  }
  if (fstat(history.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("stat ", dir.PathOf(kStopHistoryFile)));
  }
  const off_t end = st.st_size;
  // A torn tail (no newline) is closed off, so it stays one bad line that
  // readers skip and this entry starts a line of its own.
  char last = '\n';
  if (end > 0 && RetryOnEintr([&] { return pread(history.get(), &last, 1, end - 1); }) != 1) {
    last = '\n';
  }
  if (last != '\n') line.insert(line.begin(), '\n');
  absl::string_view rest(line);
  off_t at = end;
  while (!rest.empty()) {
    ssize_t n = RetryOnEintr([&] { return pwrite(history.get(), rest.data(), rest.size(), at); });
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      // Whole or not at all: cut off what part of it got written.
      (void)RetryOnEintr([&] { return ftruncate(history.get(), end); });
      return ErrnoStatus(err, absl::StrCat("append to ", dir.PathOf(kStopHistoryFile)));
    }
    rest.remove_prefix(static_cast<size_t>(n));
    at += n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AppendStopHistory(const StateDirectory& dir, const nlohmann::ordered_json& entry) {
  RecordLock lock(dir);
  return AppendHistoryLine(dir, DumpJson(entry) + "\n");
}

absl::Status WriteStopRecord(const StateDirectory& dir, const StopRecord& record) {
  nlohmann::ordered_json json = StopRecordToJson(record);
  RecordLock lock(dir);
  nlohmann::json existing = ReadLastStopRecord(dir);
  bool history_only = IsRecordOfALaterInstance(existing, record.self);
  absl::Status durable = absl::OkStatus();
  if (history_only) {
    LOG(INFO) << "stop record appended to " << dir.PathOf(kStopHistoryFile) << " only: "
              << kLastShutdownFile << " already holds the stop of pid "
              << existing.value("pid", 0) << ", which started after this process";
  } else {
    durable = dir.WriteAtomically(kLastShutdownFile, DumpJson(json, 2) + "\n", 0644);
    if (!durable.ok()) {
      // The log is then the only copy: the whole record goes into it.
      LOG(ERROR) << "could not write the stop record: " << durable.message()
                 << "; the record: " << DumpJson(json);
    } else {
      LOG(INFO) << "stop record written to " << dir.PathOf(kLastShutdownFile);
    }
  }
  absl::Status appended = AppendHistoryLine(dir, DumpJson(json) + "\n");
  if (!appended.ok()) {
    LOG(WARNING) << "could not append the stop record to the history: " << appended.message();
    if (history_only) {
      LOG(ERROR) << "could not write the stop record: " << appended.message()
                 << "; the record: " << DumpJson(json);
      return appended;
    }
  }
  return durable;
}

bool IsRecordOf(const nlohmann::json& record, const ProcessIdentity& who) {
  absl::StatusOr<ProcessIdentity> writer = IdentityFromJson(record);
  return writer.ok() && writer->pid == who.pid && writer->start_time_ticks == who.start_time_ticks;
}

std::vector<nlohmann::json> ReadStopHistory(const StateDirectory& dir) {
  std::vector<nlohmann::json> entries;
  for (const std::string& name : {absl::StrCat(kStopHistoryFile, ".1"), std::string(kStopHistoryFile)}) {
    absl::StatusOr<std::string> history = dir.Read(name);
    if (!history.ok()) continue;
    for (absl::string_view line : absl::StrSplit(*history, '\n', absl::SkipEmpty())) {
      absl::StatusOr<nlohmann::json> entry = ParseJsonObject(std::string(line));
      if (entry.ok()) entries.push_back(*std::move(entry));
    }
  }
  return entries;
}

nlohmann::json FindStopRecord(const StateDirectory& dir, const ProcessIdentity& who) {
  nlohmann::json last = ReadLastStopRecord(dir);
  if (IsRecordOf(last, who)) return last;
  std::vector<nlohmann::json> history = ReadStopHistory(dir);
  for (auto it = history.rbegin(); it != history.rend(); ++it) {
    if (!it->contains("kind") && IsRecordOf(*it, who)) return *it;
  }
  return nullptr;
}

}  // namespace gateway
