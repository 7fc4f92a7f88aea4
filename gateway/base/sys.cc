// System-call wrappers shared by the core and the tools; see sys.h.
#include "gateway/base/sys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gateway {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EAGAIN:
    case EADDRINUSE:
    case EBUSY:
      return absl::UnavailableError(message);
    case EINVAL:
    case ELOOP:
    case ENOTDIR:
    case EISDIR:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::string> ReadFileAt(int dirfd, const std::string& path,
                                       bool nofollow) {
  int flags = O_RDONLY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0);
  UniqueFd fd(RetryOnEintr([&] { return openat(dirfd, path.c_str(), flags); }));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string contents;
  char buffer[4096];
  for (;;) {
    ssize_t n = RetryOnEintr([&] { return read(fd.get(), buffer, sizeof buffer); });
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  return ReadFileAt(AT_FDCWD, path);
}

namespace {

const char* FileTypeName(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a plain file";
}

}  // namespace

std::string FormatByteSize(uint64_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return absl::StrCat(bytes >> 20, " MiB");
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return absl::StrCat(bytes >> 10, " KiB");
  return absl::StrCat(bytes, " bytes");
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(RetryOnEintr([&] { return open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); }));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file (", FileTypeName(st.st_mode), ")"));
  }
  auto too_large = [&](const std::string& size) {
    return absl::OutOfRangeError(absl::StrCat(path, " is ", size, ", over the ",
                                              FormatByteSize(max_bytes), " limit"));
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return too_large(absl::StrCat(st.st_size, " bytes"));
  }
  std::string contents(max_bytes + 1, '\0');
  size_t total = 0;
  while (total < contents.size()) {
    ssize_t n = RetryOnEintr(
        [&] { return read(fd.get(), contents.data() + total, contents.size() - total); });
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    total += static_cast<size_t>(n);
  }
  if (total > max_bytes) return too_large("growing while it is read");
  contents.resize(total);
  return contents;
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = RetryOnEintr([&] { return write(fd, data.data(), data.size()); });
    if (n < 0) return ErrnoStatus(errno, "write");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string AtomicWriteTempName(absl::string_view name, pid_t pid) {
  return absl::StrCat(".", name, ".", pid, ".tmp");
}

pid_t AtomicWriteTempWriter(absl::string_view file) {
  if (!absl::ConsumePrefix(&file, ".") || !absl::ConsumeSuffix(&file, ".tmp")) return 0;
  size_t dot = file.rfind('.');
  if (dot == absl::string_view::npos || dot == 0) return 0;
  int pid = 0;
  if (!absl::SimpleAtoi(file.substr(dot + 1), &pid) || pid <= 0) return 0;
  return pid;
}

absl::Status WriteFileAtomically(int dirfd, const std::string& name,
                                 absl::string_view contents, mode_t mode) {
  std::string temp = AtomicWriteTempName(name, getpid());
  unlinkat(dirfd, temp.c_str(), 0);  // A leftover of this pid's crash.
  UniqueFd fd(RetryOnEintr([&] {
    return openat(dirfd, temp.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  }));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", temp));
  absl::Status status = WriteAll(fd.get(), contents);
  if (status.ok() && fchmod(fd.get(), mode) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("chmod ", temp));
  }
  if (status.ok() && fsync(fd.get()) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("fsync ", temp));
  }
  fd.Reset();
  if (status.ok() && renameat(dirfd, temp.c_str(), dirfd, name.c_str()) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("rename ", temp, " to ", name));
  }
  if (!status.ok()) {
    unlinkat(dirfd, temp.c_str(), 0);
    return status;
  }
  if (fsync(dirfd) != 0) return ErrnoStatus(errno, "fsync state directory");
  return absl::OkStatus();
}

}  // namespace gateway
