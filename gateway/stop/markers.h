// Stop markers (SPEC 4.5): small JSON files that say "the next stop of
// process P is planned" (planned-stop.json, written by gatewayctl or a
// supervisor's stop hook) or "is a takeover" (takeover.json, written by the
// successor during a replacement). A marker is honoured only when it is a
// private regular file that names this exact process (pid, start time, boot
// id) and is fresh; anything else is ignored with a reason. A marker is
// consumed only by the detector whose verdict it decides.
#ifndef GATEWAY_STOP_MARKERS_H_
#define GATEWAY_STOP_MARKERS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/base/proc.h"
#include "gateway/base/state_dir.h"

namespace gateway {

enum class MarkerKind { kTakeover, kPlannedStop };

// "takeover.json" or "planned-stop.json".
const char* MarkerFileName(MarkerKind kind);

inline constexpr int kMarkerVersion = 1;
inline constexpr absl::Duration kDefaultMarkerTtl = absl::Seconds(60);
// Markers are tiny; anything larger is not one of ours.
inline constexpr size_t kMaxMarkerBytes = 64 * 1024;

struct Marker {
  int version = kMarkerVersion;
  ProcessIdentity target;
  absl::Time written_at;
  pid_t writer_pid = 0;
  std::string reason;
  std::string nonce;
};

std::string MarkerToJson(const Marker& marker);
// Fails (InvalidArgument) with a reason on malformed or truncated JSON, an
// unknown version, or a missing or mistyped field.
absl::StatusOr<Marker> ParseMarker(const std::string& text);

// A marker for `target` written now by this process, with a random nonce.
Marker NewMarker(const ProcessIdentity& target, const std::string& reason);

// Writes the marker atomically (temp file, fsync, rename), mode 0600.
absl::Status WriteMarker(const StateDirectory& dir, MarkerKind kind, const Marker& marker);

// Why a marker present on disk is not honoured for `self`, or nullopt when
// it is. Pure: the checks that need the file (owner, mode, type) are done
// by the store before the contents are read.
std::optional<std::string> WhyMarkerDoesNotApply(const Marker& marker,
                                                  const ProcessIdentity& self,
                                                  absl::Time now, absl::Duration ttl);

// How detectors reach markers (through StopContext::markers).
class MarkerStore {
 public:
  virtual ~MarkerStore() = default;
  // The marker of `kind` when one is present and honoured for `self` at
  // `now`. A present but ignored marker adds a warning saying why.
  virtual std::optional<Marker> Find(MarkerKind kind, const ProcessIdentity& self,
                                     uid_t self_uid, absl::Time now) = 0;
  // Removes the marker that decided a stop.
  virtual void Consume(MarkerKind kind, const Marker& marker) = 0;
  // Warnings about ignored markers since the last call.
  virtual std::vector<std::string> TakeWarnings() = 0;
};

// Markers in a state directory. With `dry_run` (gatewayctl explain),
// Consume does nothing.
class StateDirMarkerStore : public MarkerStore {
 public:
  StateDirMarkerStore(const StateDirectory* dir, absl::Duration ttl, bool dry_run = false)
      : dir_(dir), ttl_(ttl), dry_run_(dry_run) {}

  std::optional<Marker> Find(MarkerKind kind, const ProcessIdentity& self, uid_t self_uid,
                             absl::Time now) override;
  void Consume(MarkerKind kind, const Marker& marker) override;
  std::vector<std::string> TakeWarnings() override;

 private:
  const StateDirectory* dir_;
  absl::Duration ttl_;
  bool dry_run_;
  std::vector<std::string> warnings_;
};

}  // namespace gateway

#endif  // GATEWAY_STOP_MARKERS_H_
