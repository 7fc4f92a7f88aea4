// The access log: its JSON line, lines from many threads arriving once,
// reopen after logrotate, and writers that never wait for a slow reader.
#include "gateway/dataplane/access_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "gateway/base/sys.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace gateway {
namespace {

std::string TestDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// A fresh path per test (the directory is shared by the test's cases).
std::string TestPath(const std::string& name) {
  std::string path = absl::StrCat(TestDir(), "/", name);
  unlink(path.c_str());
  return path;
}

AccessLogEntry Entry(const std::string& route, int retries) {
  AccessLogEntry entry;
  entry.end = absl::FromUnixMicros(1796641200123456);  // 2026-12-07T11:00:00.123456Z
  entry.start = entry.end - absl::Microseconds(1500250);
  entry.route = route;
  entry.client = "127.0.0.1:40000";
  entry.upstream = "127.0.0.1:9000";
  entry.bytes_from_client = 10;
  entry.bytes_to_client = 20;
  entry.ended = "client_closed";
  entry.ended_by = "client";
  entry.retries = retries;
  return entry;
}

// The file's lines, each parsed; fails the test on a line that is not JSON.
std::vector<nlohmann::json> ReadLines(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  EXPECT_TRUE(contents.ok()) << contents.status();
  std::vector<nlohmann::json> lines;
  if (!contents.ok()) return lines;
  EXPECT_TRUE(contents->empty() || contents->back() == '\n');
  for (absl::string_view line : absl::StrSplit(*contents, '\n', absl::SkipEmpty())) {
    absl::StatusOr<nlohmann::json> j = ParseJsonObject(std::string(line));
    EXPECT_TRUE(j.ok()) << j.status() << ": " << line;
    if (j.ok()) lines.push_back(*std::move(j));
  }
  return lines;
}

TEST(AccessLogLineTest, IsOneJsonObjectWithTheFields) {
  const std::string line = AccessLogLine(Entry("web", 2));
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(line);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["time"], "2026-12-07T11:00:00.123456Z");
  EXPECT_EQ((*j)["route"], "web");
  EXPECT_EQ((*j)["client"], "127.0.0.1:40000");
  EXPECT_EQ((*j)["upstream"], "127.0.0.1:9000");
  EXPECT_EQ((*j)["bytes_from_client"], 10);
  EXPECT_EQ((*j)["bytes_to_client"], 20);
  ASSERT_TRUE((*j)["duration_ms"].is_number_float());
  EXPECT_DOUBLE_EQ((*j)["duration_ms"].get<double>(), 1500.25);
  EXPECT_EQ((*j)["ended"], "client_closed");
  EXPECT_EQ((*j)["ended_by"], "client");
  EXPECT_EQ((*j)["retries"], 2);
  EXPECT_EQ(j->size(), 10u);
}

TEST(AccessLogLineTest, NoUpstreamIsNull) {
  AccessLogEntry entry = Entry("web", 0);
  entry.upstream.clear();
  entry.ended = "no_upstream";
  entry.ended_by = "gateway";
  absl::StatusOr<nlohmann::json> j = ParseJsonObject(AccessLogLine(entry));
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE((*j)["upstream"].is_null());
}

TEST(AccessLogTest, OpenErrorNamesThePath) {
  const std::string path = TestDir() + "/no/such/dir/access.log";
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(path);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(log.status().message().find(path), std::string::npos) << log.status();
}

TEST(AccessLogTest, FifoWithoutReaderIsAnError) {
  const std::string path = TestPath("noreader.fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(path);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("FIFO"), std::string::npos) << log.status();
}

TEST(AccessLogTest, LinesFromFourThreadsArriveExactlyOnce) {
  const std::string path = TestPath("threads.log");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  {
    absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < kPerThread; ++i) {
          (*log)->Write(AccessLogLine(Entry(absl::StrCat("t", t), i)));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_TRUE((*log)->Flush(absl::Seconds(5)).ok());
    EXPECT_EQ((*log)->lines_written(), kThreads * kPerThread);
    EXPECT_EQ((*log)->lines_dropped(), 0);
  }
  std::vector<nlohmann::json> lines = ReadLines(path);
  EXPECT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<std::pair<std::string, int>> seen;
  for (const nlohmann::json& j : lines) {
    EXPECT_TRUE(seen.emplace(j["route"].get<std::string>(), j["retries"].get<int>()).second)
        << j;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST(AccessLogTest, ReopenAfterRenameSplitsOldAndNewFiles) {
  const std::string path = TestPath("rotate.log");
  const std::string rotated = TestPath("rotate.log.1");
  constexpr int kLines = 5000;
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.status();
  // No flush before the rename: the lines may still be queued when it and
  // the reopen happen, and must go to the old file all the same.
  for (int i = 0; i < kLines; ++i) (*log)->Write(AccessLogLine(Entry("before", i)));
  ASSERT_EQ(rename(path.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE((*log)->Reopen().ok());
  EXPECT_EQ((*log)->reopens(), 1);
  for (int i = 0; i < kLines; ++i) (*log)->Write(AccessLogLine(Entry("after", i)));
  log->reset();

  std::vector<nlohmann::json> old_lines = ReadLines(rotated);
  std::vector<nlohmann::json> new_lines = ReadLines(path);
  ASSERT_EQ(old_lines.size(), static_cast<size_t>(kLines));
  ASSERT_EQ(new_lines.size(), static_cast<size_t>(kLines));
  for (int i = 0; i < kLines; ++i) {
    EXPECT_EQ(old_lines[i]["route"], "before");
    EXPECT_EQ(old_lines[i]["retries"], i);
    EXPECT_EQ(new_lines[i]["route"], "after");
    EXPECT_EQ(new_lines[i]["retries"], i);
  }
}

TEST(AccessLogTest, FailedReopenKeepsWritingToTheOldFile) {
  const std::string dir = TestPath("gone");
  const std::string moved = TestPath("gone.moved");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(dir + "/access.log");
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Write(AccessLogLine(Entry("before", 0)));
  // The directory is gone, so the path cannot be opened again.
  ASSERT_EQ(rename(dir.c_str(), moved.c_str()), 0);
  absl::Status reopened = (*log)->Reopen();
  EXPECT_EQ(reopened.code(), absl::StatusCode::kNotFound) << reopened;
  EXPECT_NE(reopened.message().find(dir + "/access.log"), std::string::npos) << reopened;
  EXPECT_EQ((*log)->reopens(), 0);
  (*log)->Write(AccessLogLine(Entry("after", 1)));
  log->reset();
  std::vector<nlohmann::json> lines = ReadLines(moved + "/access.log");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["route"], "after");
}

TEST(AccessLogTest, SlowFifoReaderNeverBlocksWriters) {
  const std::string path = TestPath("slow.fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  // The reader opens first (a FIFO opened for writing without blocking
  // needs one), then blocks in read() once the writer exists.
  UniqueFd reader(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(path, 64 << 10);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(fcntl(reader.get(), F_SETFL, 0), 0);

  std::string received;
  std::thread slow_reader([&] {
    char buffer[1024];
    for (;;) {
      ssize_t n = RetryOnEintr([&] { return read(reader.get(), buffer, sizeof buffer); });
      if (n <= 0) return;  // The writer closed the FIFO.
      received.append(buffer, static_cast<size_t>(n));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });

  constexpr int kLines = 100000;
  const std::string line = AccessLogLine(Entry("slow", 0));
  const absl::Time start = absl::Now();
  for (int i = 0; i < kLines; ++i) (*log)->Write(line);
  const absl::Duration took = absl::Now() - start;
  EXPECT_LT(took, absl::Seconds(2));

  // 64 KiB queued and a pipe's 64 KiB at 100 KiB/s: well within the wait.
  EXPECT_TRUE((*log)->Flush(absl::Seconds(4)).ok());
  const int64_t written = (*log)->lines_written();
  EXPECT_EQ(written + (*log)->lines_dropped(), kLines);
  EXPECT_GT((*log)->lines_dropped(), 0);
  log->reset();
  slow_reader.join();

  int64_t received_lines = 0;
  for (absl::string_view got : absl::StrSplit(received, '\n', absl::SkipEmpty())) {
    EXPECT_EQ(std::string(got) + "\n", line);
    ++received_lines;
  }
  EXPECT_EQ(received_lines, written);
}

TEST(AccessLogTest, WriteErrorsDropAndCountTheLines) {
  // /dev/full fails every write with ENOSPC, as a full disk would.
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open("/dev/full");
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 100; ++i) (*log)->Write(AccessLogLine(Entry("full", i)));
  ASSERT_TRUE((*log)->Flush(absl::Seconds(4)).ok());
  EXPECT_EQ((*log)->lines_written(), 0);
  EXPECT_EQ((*log)->lines_dropped(), 100);
}

TEST(AccessLogTest, StuckReaderBoundsReopenAndShutdown) {
  const std::string path = TestPath("stuck.fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  // A reader that never reads, and a pipe of one page: the first buffer
  // the writer takes does not fit, so it is stuck in EAGAIN and poll().
  UniqueFd reader(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  ASSERT_GT(fcntl(reader.get(), F_SETPIPE_SZ, 4096), 0);
  absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(path, 64 << 10);
  ASSERT_TRUE(log.ok()) << log.status();
  const std::string line = AccessLogLine(Entry("stuck", 0));
  for (int i = 0; i < 2000; ++i) (*log)->Write(line);  // Pipe and buffer full.
  EXPECT_GT((*log)->lines_dropped(), 0);

  absl::Time start = absl::Now();
  absl::Status reopened = (*log)->Reopen();
  EXPECT_EQ(reopened.code(), absl::StatusCode::kDeadlineExceeded) << reopened;
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ((*log)->reopens(), 0);

  start = absl::Now();
  log->reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace gateway
