// Marker format, validation and storage; see markers.h.
#include "gateway/stop/markers.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"

namespace gateway {

const char* MarkerFileName(MarkerKind kind) {
  return kind == MarkerKind::kTakeover ? "takeover.json" : "planned-stop.json";
}

std::string MarkerToJson(const Marker& m) {
  nlohmann::json j = {
      {"version", m.version},
      {"target_pid", m.target.pid},
      {"target_start_time", m.target.start_time_ticks},
      {"target_boot_id", m.target.boot_id},
      {"written_at", FormatRfc3339(m.written_at)},
      {"writer_pid", m.writer_pid},
      {"reason", m.reason},
      {"nonce", m.nonce},
  };
  return DumpJson(j) + "\n";
}

namespace {

std::optional<pid_t> PidIn(const nlohmann::json& j, const char* name) {
  return j.contains(name) ? JsonPid(j[name]) : std::nullopt;
}

}  // namespace

absl::StatusOr<Marker> ParseMarker(const std::string& text) {
  absl::StatusOr<nlohmann::json> parsed = ParseJsonObject(text);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  std::optional<int64_t> version;
  if (j.contains("version")) {
    version = JsonIntegerIn(j["version"], std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max());
  }
  if (!version) return absl::InvalidArgumentError("no integer 'version' field");
  if (*version != kMarkerVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown version ", *version, " (this gateway reads version ",
                     kMarkerVersion, ")"));
  }
  Marker m;
  m.version = kMarkerVersion;
  auto require = [&](const char* name, bool ok) -> absl::Status {
    if (!j.contains(name) || !ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing, mistyped or out-of-range field '", name, "'"));
    }
    return absl::OkStatus();
  };
  std::optional<pid_t> target_pid = PidIn(j, "target_pid");
  for (absl::Status s : {
           require("target_pid", target_pid.has_value()),
           require("target_start_time", j.contains("target_start_time") &&
                                            j["target_start_time"].is_number_unsigned()),
           require("target_boot_id",
                   j.contains("target_boot_id") && j["target_boot_id"].is_string()),
           require("written_at", j.contains("written_at") && j["written_at"].is_string()),
       }) {
    if (!s.ok()) return s;
  }
  m.target.pid = *target_pid;
  m.target.start_time_ticks = j["target_start_time"].get<uint64_t>();
  m.target.boot_id = j["target_boot_id"].get<std::string>();
  absl::StatusOr<absl::Time> written_at = ParseTime(j["written_at"].get<std::string>());
  if (!written_at.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("field 'written_at': ", written_at.status().message()));
  }
  m.written_at = *written_at;
  m.writer_pid = PidIn(j, "writer_pid").value_or(0);
  if (j.contains("reason") && j["reason"].is_string()) m.reason = j["reason"].get<std::string>();
  if (j.contains("nonce") && j["nonce"].is_string()) m.nonce = j["nonce"].get<std::string>();
  return m;
}

Marker NewMarker(const ProcessIdentity& target, const std::string& reason) {
  Marker m;
  m.target = target;
  m.written_at = absl::Now();
  m.writer_pid = getpid();
  m.reason = reason;
  unsigned char random[16] = {};
  if (getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
    // Not security-relevant (identity and ownership are); keep it unique.
    absl::SNPrintF(reinterpret_cast<char*>(random), sizeof random, "%d", getpid());
  }
  m.nonce = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(random), sizeof random));
  return m;
}

absl::Status WriteMarker(const StateDirectory& dir, MarkerKind kind, const Marker& marker) {
  return dir.WriteAtomically(MarkerFileName(kind), MarkerToJson(marker), 0600);
}

std::optional<std::string> WhyMarkerDoesNotApply(const Marker& marker,
                                                  const ProcessIdentity& self, absl::Time now,
                                                  absl::Duration ttl) {
  if (marker.target.boot_id != self.boot_id) {
    return absl::StrCat("written for boot ", marker.target.boot_id, ", this is boot ",
                        self.boot_id);
  }
  if (marker.target.pid != self.pid) {
    return absl::StrCat("names pid ", marker.target.pid, ", not this process (pid ", self.pid,
                        ")");
  }
  if (marker.target.start_time_ticks != self.start_time_ticks) {
    return absl::StrCat("names pid ", marker.target.pid, " started at tick ",
                        marker.target.start_time_ticks, ", but this process started at tick ",
                        self.start_time_ticks, " (an earlier process with a reused pid)");
  }
  // A little skew is tolerated for writers whose clock read raced ours.
  if (marker.written_at > now + absl::Seconds(2)) {
    return absl::StrCat("written_at ", FormatRfc3339(marker.written_at), " is in the future");
  }
  if (now - marker.written_at > ttl) {
    return absl::StrCat("expired: written at ", FormatRfc3339(marker.written_at),
                        ", older than the TTL of ", absl::FormatDuration(ttl));
  }
  return std::nullopt;
}

namespace {

// Opens a marker without following links or blocking on a FIFO, and checks
// what the file is before anything reads it. NotFound when absent.
absl::StatusOr<std::string> ReadTrustedMarker(int dirfd, const char* name, uid_t self_uid) {
  UniqueFd fd(RetryOnEintr([&] {
    return openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  }));
  if (!fd.valid()) {
    if (errno == ENOENT) return absl::NotFoundError("absent");
    if (errno == ELOOP) return absl::FailedPreconditionError("it is a symbolic link");
    return ErrnoStatus(errno, "cannot open it");
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "cannot stat it");
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError("it is not a regular file");
  if (st.st_uid != self_uid && st.st_uid != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("it is owned by uid ", st.st_uid, ", not by uid ", self_uid, " or root"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "it is writable by group or others (mode %04o)", st.st_mode & 07777));
  }
  if (st.st_nlink != 1) {
    return absl::FailedPreconditionError(absl::StrCat("it has ", st.st_nlink, " hard links"));
  }
  if (static_cast<size_t>(st.st_size) > kMaxMarkerBytes) {
    return absl::FailedPreconditionError(absl::StrCat("it is too large (", st.st_size, " bytes)"));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  ssize_t n = RetryOnEintr([&] { return pread(fd.get(), text.data(), text.size(), 0); });
  if (n < 0) return ErrnoStatus(errno, "cannot read it");
  text.resize(static_cast<size_t>(n));
  return text;
}

}  // namespace

std::optional<Marker> StateDirMarkerStore::Find(MarkerKind kind, const ProcessIdentity& self,
                                                uid_t self_uid, absl::Time now) {
  const char* name = MarkerFileName(kind);
  absl::StatusOr<std::string> text = ReadTrustedMarker(dir_->fd(), name, self_uid);
  if (absl::IsNotFound(text.status())) return std::nullopt;
  std::string why;
  std::optional<Marker> honoured;
  if (!text.ok()) {
    why = std::string(text.status().message());
  } else if (absl::StatusOr<Marker> marker = ParseMarker(*text); !marker.ok()) {
    why = std::string(marker.status().message());
  } else if (std::optional<std::string> reason = WhyMarkerDoesNotApply(*marker, self, now, ttl_)) {
    why = *reason;
  } else {
    honoured = *marker;
  }
  if (!honoured) {
    warnings_.push_back(absl::StrCat("ignoring ", dir_->PathOf(name), ": ", why));
  }
  return honoured;
}

void StateDirMarkerStore::Consume(MarkerKind kind, const Marker& marker) {
  if (dry_run_) return;
  const char* name = MarkerFileName(kind);
  // Unlink only the marker that was honoured, not one written since.
  absl::StatusOr<std::string> text = dir_->Read(name);
  if (!text.ok()) return;
  absl::StatusOr<Marker> current = ParseMarker(*text);
  if (current.ok() && current->nonce == marker.nonce) {
    absl::Status removed = dir_->Remove(name);
    if (!removed.ok()) warnings_.push_back(std::string(removed.message()));
  }
}

std::vector<std::string> StateDirMarkerStore::TakeWarnings() {
  return std::exchange(warnings_, {});
}

}  // namespace gateway
