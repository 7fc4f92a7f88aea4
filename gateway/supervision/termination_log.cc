// See termination_log.h.
#include "gateway/supervision/termination_log.h"

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gateway/base/sys.h"
#include "gflags/gflags.h"
#include "glog/logging.h"

DEFINE_string(termination_log, gateway::kDefaultTerminationLog,
              "File for the Kubernetes termination message (class, detector, evidence; at "
              "most 4096 bytes), written at stop. The default is used only when it exists "
              "and is writable; empty disables it");

namespace gateway {
namespace {

// Drops trailing bytes until `text` fits in `max_bytes` without splitting a
// UTF-8 sequence.
std::string TruncateUtf8(std::string text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

}  // namespace

std::string TerminationMessage(const StopRecord& record) {
  const Verdict& verdict = record.verdict;
  std::string message =
      absl::StrCat(StopClassName(verdict.stop_class), " by ",
                   verdict.detector.empty() ? std::string("no detector") : verdict.detector,
                   ", exit ", record.exit_code, ": ", verdict.evidence, "\n");
  return TruncateUtf8(std::move(message), kTerminationMessageMaxBytes);
}

absl::Status WriteTerminationMessage(const std::string& path, const std::string& message) {
  UniqueFd fd(RetryOnEintr(
      [&] { return open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); }));
  if (!fd.valid()) return ErrnoStatus(errno, "open termination log " + path);
  size_t written = 0;
  while (written < message.size()) {
    ssize_t n = RetryOnEintr(
        [&] { return write(fd.get(), message.data() + written, message.size() - written); });
    if (n < 0) return ErrnoStatus(errno, "write termination log " + path);
    written += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0 && errno != EINVAL) {
    return ErrnoStatus(errno, "fsync termination log " + path);
  }
  return absl::OkStatus();
}

void WriteTerminationLog(const StopRecord& record) {
  const std::string& path = FLAGS_termination_log;
  if (path.empty()) return;
  bool is_default = path == kDefaultTerminationLog;
  if (is_default && access(path.c_str(), W_OK) != 0) return;  // not in Kubernetes
  absl::Status written = WriteTerminationMessage(path, TerminationMessage(record));
  if (!written.ok()) {
    LOG(ERROR) << "could not write the termination message: " << written.message();
  } else {
    LOG(INFO) << "termination message written to " << path;
  }
}

}  // namespace gateway
