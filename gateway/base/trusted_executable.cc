// See trusted_executable.h.
#include "gateway/base/trusted_executable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace gateway {
namespace {

// Why `what` (a directory or the file, already fstat'ed) cannot be trusted
// by a process running as `owner_uid`, or OK.
absl::Status CheckOwnerAndMode(const struct stat& st, const std::string& what, uid_t owner_uid) {
  if (st.st_uid != 0 && st.st_uid != owner_uid) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " is owned by uid ", st.st_uid, ", not by root or uid ", owner_uid,
                     " (the gateway's user)"));
  }
  if (st.st_mode & S_IWOTH) {
    return absl::PermissionDeniedError(
        absl::StrFormat("%s is writable by others (mode %04o)", what, st.st_mode & 07777));
  }
  if (st.st_mode & S_IWGRP) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s is writable by its group, gid %d (mode %04o)", what, st.st_gid, st.st_mode & 07777));
  }
  return absl::OkStatus();
}

absl::Status CheckAt(int fd, const std::string& what, uid_t owner_uid) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(errno, absl::StrCat("cannot inspect ", what));
  return CheckOwnerAndMode(st, what, owner_uid);
}

}  // namespace

absl::StatusOr<TrustedExecutable> OpenTrustedExecutable(const std::string& path,
                                                        uid_t owner_uid) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("the binary must be an absolute path, not '", path, "'"));
  }
  char* resolved = realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return ErrnoStatus(errno, absl::StrCat("cannot resolve ", path));
  TrustedExecutable exe;
  exe.path = resolved;
  std::free(resolved);

  // From / down, each directory opened relative to the one checked before
  // it and never through a symbolic link: a component swapped after
  // realpath() fails to open instead of redirecting the walk.
  UniqueFd dir(RetryOnEintr([] { return open("/", O_PATH | O_DIRECTORY | O_CLOEXEC); }));
  if (!dir.valid()) return ErrnoStatus(errno, "cannot open /");
  absl::Status checked = CheckAt(dir.get(), "directory /", owner_uid);
  if (!checked.ok()) return checked;
  std::vector<std::string> parts = absl::StrSplit(exe.path, '/', absl::SkipEmpty());
  if (parts.empty()) return absl::InvalidArgumentError("/ is a directory, not a binary");
  std::string walked;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {  // bounded by the path's depth
    walked += "/" + parts[i];
    const std::string what = "directory " + walked;
    UniqueFd next(RetryOnEintr([&] {
      return openat(dir.get(), parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }));
    if (!next.valid()) {
      return ErrnoStatus(errno, absl::StrCat("cannot open ", what, " (did it change?)"));
    }
    checked = CheckAt(next.get(), what, owner_uid);
    if (!checked.ok()) return checked;
    dir = std::move(next);
  }
  // O_NONBLOCK: a FIFO planted at the path must not block the open.
  exe.fd = UniqueFd(RetryOnEintr([&] {
    return openat(dir.get(), parts.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  }));
  if (!exe.fd.valid()) return ErrnoStatus(errno, absl::StrCat("cannot open ", exe.path));
  struct stat st;
  if (fstat(exe.fd.get(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot inspect ", exe.path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(exe.path, " is not a regular file"));
  }
  checked = CheckOwnerAndMode(st, exe.path, owner_uid);
  if (!checked.ok()) return checked;
  if ((st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not executable (mode %04o)", exe.path, st.st_mode & 07777));
  }
  char magic[2];
  exe.script = pread(exe.fd.get(), magic, sizeof magic, 0) == 2 && magic[0] == '#' &&
               magic[1] == '!';
  return exe;
}

}  // namespace gateway
