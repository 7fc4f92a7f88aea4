// See access_log.h.
#include "gateway/dataplane/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"

namespace gateway {
namespace {

constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK;
constexpr mode_t kFileMode = 0640;
// How long a Reopen() waits for the writer, and the destructor for the
// last lines.
constexpr absl::Duration kReopenWait = absl::Seconds(2);
constexpr absl::Duration kShutdownWait = absl::Seconds(1);
// How long the writer sleeps in poll() at a time when the fd is full, so it
// notices the shutdown deadline.
constexpr int kPollSliceMs = 100;
constexpr absl::Duration kWriteErrorLogInterval = absl::Minutes(1);

std::string DisplayPath(const std::string& path) {
  return path == "-" ? std::string("- (standard error)") : path;
}

int64_t CountLines(absl::string_view data) {
  return std::count(data.begin(), data.end(), '\n');
}

UniqueFd OpenPath(const std::string& path) {
  if (path == "-") return UniqueFd(fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3));
  return UniqueFd(RetryOnEintr([&] { return open(path.c_str(), kOpenFlags, kFileMode); }));
}

absl::Status OpenError(int err, absl::string_view verb, const std::string& path) {
  std::string what = absl::StrCat("cannot ", verb, " access log ", DisplayPath(path));
  // A FIFO opened for writing without blocking has no reader yet.
  if (err == ENXIO) absl::StrAppend(&what, " (a FIFO nobody reads)");
  return ErrnoStatus(err, what);
}

}  // namespace

std::string AccessLogLine(const AccessLogEntry& entry) {
  nlohmann::ordered_json j;
  j["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", entry.end, absl::UTCTimeZone());
  j["route"] = entry.route;
  j["client"] = entry.client;
  j["upstream"] = entry.upstream.empty() ? nlohmann::ordered_json(nullptr)
                                         : nlohmann::ordered_json(entry.upstream);
  j["bytes_from_client"] = entry.bytes_from_client;
  j["bytes_to_client"] = entry.bytes_to_client;
  j["duration_ms"] = absl::ToDoubleMilliseconds(entry.end - entry.start);
  j["ended"] = entry.ended;
  j["ended_by"] = entry.ended_by;
  j["retries"] = entry.retries;
  return DumpJson(j) + "\n";
}

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& path,
                                                          size_t buffer_bytes) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "access log path is empty: name a file, or \"-\" for standard error");
  }
  UniqueFd fd = OpenPath(path);
  if (!fd.valid()) return OpenError(errno, "open", path);
  return std::unique_ptr<AccessLog>(new AccessLog(path, std::move(fd), buffer_bytes));
}

AccessLog::AccessLog(std::string path, UniqueFd fd, size_t buffer_bytes)
    : path_(std::move(path)),
      buffer_bytes_(buffer_bytes),
      is_stderr_(path_ == "-"),
      fd_(std::move(fd)) {
  // Reserved once, so an append under the lock never allocates.
  pending_.reserve(buffer_bytes_);
  writing_.reserve(buffer_bytes_);
  // The writer thread takes no signals: the process reads its signals
  // synchronously elsewhere, and a FIFO whose reader left must give EPIPE
  // here rather than a SIGPIPE.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  writer_ = std::thread([this] { RunWriter(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

AccessLog::~AccessLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    shutdown_deadline_ns_.store(absl::ToUnixNanos(absl::Now() + kShutdownWait));
  }
  work_cv_.notify_one();
  writer_.join();
  if (lines_dropped_at_shutdown_ > 0) {
    LOG(WARNING) << "access log " << DisplayPath(path_) << ": " << lines_dropped_at_shutdown_
                 << " lines dropped at shutdown (not written within "
                 << absl::FormatDuration(kShutdownWait) << ")";
  }
}

void AccessLog::Write(std::string line) {
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  std::replace(line.begin(), line.end() - 1, '\n', ' ');
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() + line.size() > buffer_bytes_) {
      lines_dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    was_empty = pending_.empty();
    pending_.append(line);
    bytes_queued_ += line.size();
  }
  // Only an empty buffer can have the writer asleep; otherwise it is busy
  // and will look again.
  if (was_empty) work_cv_.notify_one();
}

absl::Status AccessLog::Reopen() {
  if (is_stderr_) return absl::OkStatus();
  std::unique_lock<std::mutex> lock(mu_);
  // Requests not yet taken by the writer share one reopen, placed after
  // everything queued so far.
  if (!reopen_requested_) ++reopen_generation_;
  reopen_requested_ = true;
  reopen_at_ = bytes_queued_;
  const uint64_t generation = reopen_generation_;
  work_cv_.notify_one();
  if (!done_cv_.wait_for(lock, absl::ToChronoMilliseconds(kReopenWait),
                         [&] { return reopen_done_generation_ >= generation; })) {
    return absl::DeadlineExceededError(absl::StrCat(
        "access log ", path_, ": reopen not done within ", absl::FormatDuration(kReopenWait),
        ": the writer is still writing earlier lines to the old file; it reopens when done"));
  }
  return reopen_status_;
}

absl::Status AccessLog::Flush(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = bytes_queued_;
  if (!done_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                         [&] { return bytes_done_ >= target; })) {
    return absl::DeadlineExceededError(absl::StrCat("access log ", DisplayPath(path_),
                                                    ": lines not written within ",
                                                    absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

void AccessLog::RunWriter() {
  for (;;) {
    uint64_t chunk_start;
    bool reopen = false;
    uint64_t reopen_at = 0;
    uint64_t generation = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return !pending_.empty() || reopen_requested_ || stopping_; });
      if (pending_.empty() && !reopen_requested_) return;  // Stopping, nothing left.
      writing_.swap(pending_);
      chunk_start = bytes_done_;
      if (reopen_requested_) {
        reopen = true;
        reopen_at = reopen_at_;
        generation = reopen_generation_;
        reopen_requested_ = false;
      }
    }
    // The reopen point lies inside this chunk: a request made before the
    // previous swap was taken with it.
    const absl::string_view chunk = writing_;
    const size_t split = reopen ? static_cast<size_t>(reopen_at - chunk_start) : chunk.size();
    WriteChunk(chunk.substr(0, split));
    if (reopen) ReopenNow(generation);
    WriteChunk(chunk.substr(split));
    writing_.clear();  // Keeps the capacity.
  }
}

size_t AccessLog::WriteAvailable(absl::string_view data, int* error) {
  *error = 0;
  size_t offset = 0;
  while (offset < data.size() && !PastShutdownDeadline()) {
    ssize_t n = write(fd_.get(), data.data() + offset, data.size() - offset);
    if (n >= 0) {
      offset += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      WaitWritable();
    } else if (errno != EINTR) {
      *error = errno;
      break;
    }
  }
  return offset;
}

void AccessLog::WriteChunk(absl::string_view data) {
  if (data.empty()) return;
  int error = 0;
  // A line cut by an earlier error is ended, so the next one starts on a
  // line of its own.
  if (torn_line_ && WriteAvailable("\n", &error) == 1) torn_line_ = false;
  const size_t written = WriteAvailable(data, &error);
  // A line counts as written when its "\n" reached the file.
  const int64_t lines_written = CountLines(data.substr(0, written));
  const int64_t lines_lost = CountLines(data.substr(written));
  if (written > 0 && data[written - 1] != '\n') torn_line_ = true;
  lines_written_.fetch_add(lines_written);
  if (lines_lost > 0) {
    lines_dropped_.fetch_add(lines_lost);
    if (error != 0) {
      LogWriteError(error, lines_lost);
    } else {
      lines_dropped_at_shutdown_ += lines_lost;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    bytes_done_ += data.size();
  }
  done_cv_.notify_all();
}

void AccessLog::WaitWritable() {
  int timeout_ms = kPollSliceMs;
  const int64_t deadline_ns = shutdown_deadline_ns_.load();
  if (deadline_ns != INT64_MAX) {
    const int64_t left_ms = (deadline_ns - absl::GetCurrentTimeNanos()) / 1000000 + 1;
    timeout_ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(timeout_ms, left_ms)));
  }
  pollfd pfd{fd_.get(), POLLOUT, 0};
  // EINTR, POLLERR and POLLHUP: the next write() says what happened.
  poll(&pfd, 1, timeout_ms);
}

bool AccessLog::PastShutdownDeadline() const {
  return absl::GetCurrentTimeNanos() >= shutdown_deadline_ns_.load();
}

void AccessLog::ReopenNow(uint64_t generation) {
  absl::Status status;
  UniqueFd fd = OpenPath(path_);
  if (fd.valid()) {
    fd_ = std::move(fd);
    torn_line_ = false;
    reopens_.fetch_add(1);
  } else {
    status = OpenError(errno, "reopen", path_);
    LOG(ERROR) << status.message() << "; still writing to the file opened before";
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    reopen_status_ = status;
    reopen_done_generation_ = generation;
  }
  done_cv_.notify_all();
}

void AccessLog::LogWriteError(int err, int64_t lines_lost) {
  const absl::Time now = absl::Now();
  if (now - last_error_log_ < kWriteErrorLogInterval) return;
  last_error_log_ = now;
  LOG(ERROR) << ErrnoStatus(err, absl::StrCat("access log ", DisplayPath(path_), ": write"))
                    .message()
             << "; " << lines_lost << " lines dropped (logged at most once a minute; "
             << "lines_dropped counts every one)";
}

LogReopener::LogReopener(AccessLog* log) : log_(log), thread_([this] { Run(); }) {}

LogReopener::~LogReopener() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void LogReopener::Request(std::function<void(const absl::Status&)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requested_ = true;
    if (done) waiting_.push_back(std::move(done));
  }
  cv_.notify_one();
}

void LogReopener::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return requested_ || stopping_; });
    if (stopping_) return;
    requested_ = false;
    std::vector<std::function<void(const absl::Status&)>> done;
    done.swap(waiting_);
    lock.unlock();
    absl::Status status = log_->Reopen();
    for (auto& d : done) d(status);
    lock.lock();
  }
}

}  // namespace gateway
