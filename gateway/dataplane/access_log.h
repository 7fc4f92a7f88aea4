// The access log: one JSON line per finished connection, written by a
// thread of its own so that event-loop workers never wait for a disk, a
// FIFO or a full pipe. Workers append to a bounded in-memory buffer; when
// the writer falls behind and the buffer is full, lines are dropped and
// counted, never queued without bound. Reopen() is the nginx USR1 verb:
// after logrotate moved the file away, the next lines go to a new file at
// the same path. Knows nothing about the event loop.
#ifndef GATEWAY_DATAPLANE_ACCESS_LOG_H_
#define GATEWAY_DATAPLANE_ACCESS_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/base/sys.h"

namespace gateway {

// What one connection did, as the access log records it.
struct AccessLogEntry {
  absl::Time start;
  absl::Time end;
  std::string route;
  std::string client;
  std::string upstream;  // "" when none was connected.
  int64_t bytes_from_client = 0;
  int64_t bytes_to_client = 0;
  // "client_closed", "upstream_closed", "connect_failed", "no_upstream",
  // "over_limit", "idle_timeout", "drain_deadline" or "error".
  std::string ended;
  std::string ended_by;  // "client", "upstream" or "gateway".
  int retries = 0;
};

// One JSON object and "\n": {"time" (the end, RFC 3339 UTC with
// microseconds), "route", "client", "upstream" (null when none),
// "bytes_from_client", "bytes_to_client", "duration_ms" (a double),
// "ended", "ended_by", "retries"}.
std::string AccessLogLine(const AccessLogEntry& entry);

class AccessLog {
 public:
  static constexpr size_t kDefaultBufferBytes = 4 << 20;

  // Opens `path` for appending (created 0640; O_NONBLOCK, so a FIFO read
  // slowly makes the writer thread wait in poll(), where it still notices
  // shutdown) and starts the writer thread. "-" is standard error (a dup of
  // it; its flags are shared with the rest of the process, so writes to it
  // may block the writer thread). The error is one line naming the path.
  // Up to `buffer_bytes` of lines wait in memory (twice that is allocated:
  // one buffer being filled, one being written).
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(
      const std::string& path, size_t buffer_bytes = kDefaultBufferBytes);

  // Writes what it can within about a second (lines still queued then are
  // dropped), then stops the writer thread.
  ~AccessLog();

  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues one line (a "\n" is added if it does not end with one; other
  // "\n" in it become spaces, so one call is one line). Safe from any
  // thread; never blocks on I/O: the lock is held only for the append,
  // and when the line does not fit in the buffer it is dropped and counted.
  void Write(std::string line);

  // Reopens the path (logrotate renamed the file): the writer thread first
  // writes everything queued before this call to the old file, then opens
  // the path again, so no earlier line lands in the new file and none is
  // lost. Waits at most 2 s for that (DeadlineExceeded if the writer is
  // still busy with the old file: the reopen happens when it gets there).
  // A failed open keeps the old file, is logged and returned. For "-", OK
  // and nothing to do.
  absl::Status Reopen();

  // Waits until every line queued before the call has been written or
  // dropped; DeadlineExceeded after `timeout`.
  absl::Status Flush(absl::Duration timeout);

  int64_t lines_written() const { return lines_written_.load(); }
  int64_t lines_dropped() const { return lines_dropped_.load(); }
  int64_t reopens() const { return reopens_.load(); }

 private:
  AccessLog(std::string path, UniqueFd fd, size_t buffer_bytes);

  void RunWriter();
  // Writes `data` (whole lines) to fd_; counts what reached the file as
  // written and the rest (hard error, shutdown deadline) as dropped.
  void WriteChunk(absl::string_view data);
  // Writes as much of `data` as fd_ takes before a hard error (*error, an
  // errno) or the shutdown deadline; returns the bytes written.
  size_t WriteAvailable(absl::string_view data, int* error);
  // Waits until fd_ is writable, a short slice passed or the shutdown
  // deadline came.
  void WaitWritable();
  void ReopenNow(uint64_t generation);
  void LogWriteError(int err, int64_t lines_lost);
  bool PastShutdownDeadline() const;

  const std::string path_;
  const size_t buffer_bytes_;
  const bool is_stderr_;
  UniqueFd fd_;  // Used by the writer thread only (after construction).
  // Writer thread only: the last write error logged; whether an error cut
  // the last line written; lines the shutdown deadline cost.
  absl::Time last_error_log_ = absl::InfinitePast();
  bool torn_line_ = false;
  int64_t lines_dropped_at_shutdown_ = 0;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // The writer waits: lines, reopen, stop.
  std::condition_variable done_cv_;  // Flush() and Reopen() wait.
  std::string pending_;              // Guarded by mu_; whole lines.
  std::string writing_;              // Writer thread only; swapped with pending_.
  // Bytes ever appended to pending_, and bytes the writer finished
  // (written or dropped): a flush or reopen point is a value of the first.
  uint64_t bytes_queued_ = 0;  // Guarded by mu_.
  uint64_t bytes_done_ = 0;    // Guarded by mu_.
  bool reopen_requested_ = false;     // Guarded by mu_.
  uint64_t reopen_at_ = 0;            // Guarded by mu_: a bytes_queued_.
  uint64_t reopen_generation_ = 0;    // Guarded by mu_: requests so far.
  uint64_t reopen_done_generation_ = 0;  // Guarded by mu_.
  absl::Status reopen_status_;        // Guarded by mu_: the last reopen's.
  bool stopping_ = false;             // Guarded by mu_.
  std::atomic<int64_t> shutdown_deadline_ns_{INT64_MAX};

  std::atomic<int64_t> lines_written_{0};
  std::atomic<int64_t> lines_dropped_{0};
  std::atomic<int64_t> reopens_{0};

  std::thread writer_;  // Last: started when everything above exists.
};

// Reopens an AccessLog on a thread of its own, so that whoever asks (the
// signal thread on SIGUSR1, the control socket's loop) never waits for a
// slow disk. Requests that arrive while a reopen runs are served by one
// more reopen after it; each `done` gets the status of a reopen that
// started after its request.
class LogReopener {
 public:
  explicit LogReopener(AccessLog* log);
  ~LogReopener();
  LogReopener(const LogReopener&) = delete;
  LogReopener& operator=(const LogReopener&) = delete;

  // Never blocks. `done` (may be empty) runs on the reopener's thread.
  void Request(std::function<void(const absl::Status&)> done = nullptr);

 private:
  void Run();
  AccessLog* const log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void(const absl::Status&)>> waiting_;  // guarded by mu_
  bool requested_ = false;                                         // guarded by mu_
  bool stopping_ = false;                                          // guarded by mu_
  std::thread thread_;
};

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_ACCESS_LOG_H_
