// Thin, reusable wrappers around the system calls the core needs: an owning
// file descriptor, EINTR retry, errno → absl::Status with context, and
// whole-file reads and atomic writes relative to a directory descriptor.
#ifndef GATEWAY_BASE_SYS_H_
#define GATEWAY_BASE_SYS_H_

#include <sys/types.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gateway {

// Owns a file descriptor and closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Calls `fn` until it does not fail with EINTR.
template <typename Fn>
auto RetryOnEintr(Fn fn) -> decltype(fn()) {
  decltype(fn()) result;
  do {
    result = fn();
  } while (result == -1 && errno == EINTR);
  return result;
}

// A status for a failed system call: "<what>: <strerror(err)>", with the
// code that matches the errno (NotFound for ENOENT, PermissionDenied for
// EACCES/EPERM, ...).
absl::Status ErrnoStatus(int err, absl::string_view what);

// Reads a whole file. `dirfd` may be AT_FDCWD. With `nofollow`, a symbolic
// link in the last component is refused (ELOOP).
absl::StatusOr<std::string> ReadFileAt(int dirfd, const std::string& path,
                                       bool nofollow = false);
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Reads a whole regular file of at most `max_bytes`, for files an operator
// names (the config): opened without blocking (O_NONBLOCK, so a FIFO with
// no writer cannot hang the open), refused unless fstat says it is a
// regular file (FailedPrecondition, "is not a regular file (a FIFO)") and
// refused when larger than `max_bytes` (OutOfRange) before anything is
// read; never reads more than max_bytes + 1, so a file that grows while it
// is read is refused too. Messages start with `path`.
absl::StatusOr<std::string> ReadRegularFile(const std::string& path, size_t max_bytes);
// "1 MiB", "64 KiB", "100 bytes": for limits in messages.
std::string FormatByteSize(uint64_t bytes);

// Writes `contents` to `name` inside `dirfd` atomically: a temporary file in
// the same directory, fsync, rename over `name`, fsync of the directory.
// A reader sees the old file or the new one, never a torn one.
absl::Status WriteFileAtomically(int dirfd, const std::string& name,
                                 absl::string_view contents, mode_t mode);
// The temporary file WriteFileAtomically uses for `name` in process `pid`
// (".NAME.PID.tmp"), and the reverse: the writer's pid in such a file
// name, or 0 if `file` is not one.
std::string AtomicWriteTempName(absl::string_view name, pid_t pid);
pid_t AtomicWriteTempWriter(absl::string_view file);

// Writes all of `data`, retrying short writes and EINTR.
absl::Status WriteAll(int fd, absl::string_view data);

}  // namespace gateway

#endif  // GATEWAY_BASE_SYS_H_
