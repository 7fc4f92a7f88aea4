// State directory checks and the instance lock; see state_dir.h.
#include "gateway/base/state_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gateway/base/json_util.h"
#include "nlohmann/json.hpp"

namespace gateway {
namespace {

std::string EnvOr(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

// mkdir -p with mode 0700 for what it creates.
absl::Status MakeDirectories(const std::string& path) {
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    absl::StrAppend(&prefix, "/", part);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("cannot create state directory ", prefix));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DefaultStateDirPath(const Environment& env, uid_t uid) {
  // systemd may pass several directories separated by ':'; the first is ours.
  for (const char* name : {"STATE_DIRECTORY", "RUNTIME_DIRECTORY"}) {
    std::string value = EnvOr(env, name);
    if (!value.empty()) return value.substr(0, value.find(':'));
  }
  std::string xdg = EnvOr(env, "XDG_RUNTIME_DIR");
  if (!xdg.empty()) return xdg + "/gateway";
  if (uid == 0) return "/run/gateway";
  std::string home = EnvOr(env, "HOME");
  if (!home.empty() && home != "/") return home + "/.local/state/gateway";
  return absl::StrCat("/tmp/gateway-", uid);
}

absl::StatusOr<StateDirectory> StateDirectory::OpenOrCreate(const std::string& path) {
  return Open(path, /*create=*/true);
}

absl::StatusOr<StateDirectory> StateDirectory::OpenExisting(const std::string& path) {
  return Open(path, /*create=*/false);
}

absl::StatusOr<StateDirectory> StateDirectory::Open(const std::string& path, bool create) {
  if (path.empty() || path[0] != '/') {
    return absl::FailedPreconditionError(
        absl::StrCat("state directory '", ValidUtf8(path), "' must be an absolute path"));
  }
  // Its path is written into instance.json, records and replies; a flag
  // is refused earlier, but $STATE_DIRECTORY and friends arrive here.
  if (!IsValidUtf8(path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "state directory '", ValidUtf8(path),
        "' is not valid UTF-8 (invalid bytes shown as \\xNN); records and replies name it: "
        "use a UTF-8 path"));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus(errno, absl::StrCat("state directory ", path));
    if (!create) {
      return absl::NotFoundError(absl::StrCat("state directory ", path, " does not exist"));
    }
    absl::Status made = MakeDirectories(path);
    if (!made.ok()) return made;
  }
  // O_NOFOLLOW refuses a symbolic link in the last component; checking the
  // opened descriptor (not the path) closes the race with a swap.
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ELOOP || (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state directory ", path,
          " is a symbolic link; refusing it (point --state_dir at the real directory)"));
    }
    if (errno == ENOTDIR) {
      return absl::FailedPreconditionError(
          absl::StrCat("state directory ", path, " is not a directory"));
    }
    return ErrnoStatus(errno, absl::StrCat("cannot open state directory ", path));
  }
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat state directory");
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "state directory %s is owned by uid %d, not by this user (uid %d); refusing it",
        path, st.st_uid, geteuid()));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "state directory %s is writable by group or others (mode %04o); "
        "refusing it (chmod 700 %s)",
        path, st.st_mode & 07777, path));
  }
  // A directory we cannot write is useless: markers and records go here.
  if (faccessat(fd.get(), ".", W_OK | X_OK, AT_EACCESS) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("state directory ", path, " is not writable by this user"));
  }
  return StateDirectory(path, std::move(fd));
}

absl::Status StateDirectory::WriteAtomically(const std::string& name,
                                             const std::string& contents, mode_t mode) const {
  absl::Status status = WriteFileAtomically(fd(), name, contents, mode);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(path_, ": ", status.message()));
  }
  return status;
}

absl::StatusOr<std::string> StateDirectory::Read(const std::string& name) const {
  return ReadFileAt(fd(), name, /*nofollow=*/true);
}

absl::Status StateDirectory::Remove(const std::string& name) const {
  if (unlinkat(fd(), name.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove ", PathOf(name)));
  }
  return absl::OkStatus();
}

int StateDirectory::RemoveStaleTempFiles() const {
  int copy = RetryOnEintr([&] { return openat(fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (copy < 0) return 0;
  DIR* listing = fdopendir(copy);
  if (listing == nullptr) {
    close(copy);
    return 0;
  }
  std::vector<std::string> stale;
  while (dirent* entry = readdir(listing)) {
    pid_t writer = AtomicWriteTempWriter(entry->d_name);
    if (writer > 0 && kill(writer, 0) != 0 && errno == ESRCH) stale.push_back(entry->d_name);
  }
  closedir(listing);
  int removed = 0;
  for (const std::string& name : stale) {
    if (unlinkat(fd(), name.c_str(), 0) == 0) ++removed;
  }
  return removed;
}

absl::StatusOr<InstanceLock> InstanceLock::Acquire(const StateDirectory& dir) {
  UniqueFd fd(RetryOnEintr([&] {
    return openat(dir.fd(), kLockFile, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  }));
  if (!fd.valid()) {
    return ErrnoStatus(errno, absl::StrCat("cannot open lock ", dir.PathOf(kLockFile)));
  }
  if (RetryOnEintr([&] { return flock(fd.get(), LOCK_EX | LOCK_NB); }) != 0) {
    if (errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, absl::StrCat("cannot lock ", dir.PathOf(kLockFile)));
    }
    std::string holder = "another gateway";
    absl::StatusOr<std::string> instance = dir.Read(kInstanceFile);
    if (instance.ok()) {
      nlohmann::json j = nlohmann::json::parse(*instance, nullptr, false);
      if (j.is_object() && j.contains("pid") && j["pid"].is_number_integer()) {
        holder = absl::StrCat("another gateway (pid ", j["pid"].get<int64_t>(), ")");
      }
    }
    return absl::UnavailableError(absl::StrCat(
        holder, " is already running on state directory ", dir.path(),
        "; stop it first or use another --state_dir"));
  }
  return InstanceLock(std::move(fd));
}

}  // namespace gateway
