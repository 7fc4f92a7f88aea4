// The state directory (SPEC 4.7): where the pid lock, the control socket,
// markers and stop records live. It is trusted only when it is a real
// directory (not a symbolic link), owned by us and writable by nobody else;
// every file inside is reached through the directory's descriptor.
#ifndef GATEWAY_BASE_STATE_DIR_H_
#define GATEWAY_BASE_STATE_DIR_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "gateway/base/proc.h"
#include "gateway/base/sys.h"

namespace gateway {

// File names inside the state directory.
inline constexpr char kLockFile[] = "gateway.lock";
inline constexpr char kInstanceFile[] = "instance.json";
inline constexpr char kRunningSentinel[] = "running";
inline constexpr char kLastShutdownFile[] = "last-shutdown.json";
inline constexpr char kControlSocket[] = "control.sock";
inline constexpr char kStopHistoryFile[] = "stop-history.jsonl";

// The default when --state_dir is not given: $STATE_DIRECTORY (first entry)
// or $RUNTIME_DIRECTORY from systemd, else $XDG_RUNTIME_DIR/gateway, else
// /run/gateway for root and $HOME/.local/state/gateway (or
// /tmp/gateway-UID without a home) for other users.
std::string DefaultStateDirPath(const Environment& env, uid_t uid);

class StateDirectory {
 public:
  // Opens `path`, creating it (0700, with missing parents) when absent.
  // Refuses (FailedPrecondition) a symbolic link, a non-directory, one owned
  // by another user, or one writable by group or others; the message names
  // the path and what to do.
  static absl::StatusOr<StateDirectory> OpenOrCreate(const std::string& path);
  // Same checks, but never creates: for tools that look at an instance.
  static absl::StatusOr<StateDirectory> OpenExisting(const std::string& path);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  std::string PathOf(const std::string& name) const { return path_ + "/" + name; }

  absl::Status WriteAtomically(const std::string& name, const std::string& contents,
                               mode_t mode = 0600) const;
  // Reads a file inside, refusing to follow a symbolic link.
  absl::StatusOr<std::string> Read(const std::string& name) const;
  // Removes a file inside; a file that is already gone is not an error.
  absl::Status Remove(const std::string& name) const;
  // Removes the temporary files (".NAME.PID.tmp") of atomic writes that a
  // process killed mid-write left behind, when PID no longer exists (a live
  // PID may be a gatewayctl or predecessor writing right now). Returns how
  // many were removed.
  int RemoveStaleTempFiles() const;

 private:
  static absl::StatusOr<StateDirectory> Open(const std::string& path, bool create);
  StateDirectory(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;
};

// One instance per state directory: an exclusive flock on gateway.lock, held
// for the life of the process. The kernel drops it when the holder dies, so
// a lock left by a killed process is free again by construction.
class InstanceLock {
 public:
  // Fails with Unavailable, naming the running instance, when held.
  static absl::StatusOr<InstanceLock> Acquire(const StateDirectory& dir);
  // Wraps a descriptor of the lock file received from a predecessor during
  // a replacement; the lock is the predecessor's open file description.
  static InstanceLock Adopt(UniqueFd fd) { return InstanceLock(std::move(fd)); }

  int fd() const { return fd_.get(); }

 private:
  explicit InstanceLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace gateway

#endif  // GATEWAY_BASE_STATE_DIR_H_
