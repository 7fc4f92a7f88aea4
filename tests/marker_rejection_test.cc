// Black-box: markers on disk that must not decide a stop. Each bad marker
// is written by hand (not with the gateway's own code) into the state
// directory of a running gateway; a SIGTERM from an unrelated process must
// then stay unexpected, and the log and the record must say why the marker
// was ignored.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"

namespace gateway::testing {
namespace {

struct Identity {
  int64_t pid;
  uint64_t start_time;
  std::string boot_id;
};

Identity ReadIdentity(const Gateway& gw) {
  nlohmann::json j =
      nlohmann::json::parse(ReadText(gw.state_dir() + "/instance.json"), nullptr, false);
  return {j["pid"].get<int64_t>(), j["start_time"].get<uint64_t>(),
          j["boot_id"].get<std::string>()};
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string MarkerJson(const Identity& id, absl::Time written_at, int version = 1) {
  return nlohmann::json{{"version", version},
                        {"target_pid", id.pid},
                        {"target_start_time", id.start_time},
                        {"target_boot_id", id.boot_id},
                        {"written_at", Rfc3339(written_at)},
                        {"writer_pid", getpid()},
                        {"reason", "test"},
                        {"nonce", "abc"}}
      .dump();
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode = 0600) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ASSERT_EQ(fchmod(fd, mode), 0);
  close(fd);
}

enum class Bad {
  kSymlink, kFifo, kDirectory, kOtherOwner, kGroupWritable, kWorldWritable, kHardLink,
  kWrongPid, kReusedPid, kOtherBoot, kExpired, kFuture, kMalformed, kTruncated,
  kUnknownVersion, kEmpty,
};

struct BadCase {
  std::string name;
  Bad kind;
  std::string reason;  // what the warning must contain
};

class BadMarkerTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadMarkerTest, IsIgnoredAndTheStopStaysUnexpected) {
  const BadCase& c = GetParam();
  if (c.kind == Bad::kOtherOwner && geteuid() != 0) {
    GTEST_SKIP() << "needs root to give the marker to another user";
  }
  Gateway gw("badmarker-" + c.name);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  Identity id = ReadIdentity(gw);
  std::string path = gw.state_dir() + "/planned-stop.json";
  std::string good = MarkerJson(id, absl::Now());
  switch (c.kind) {
    case Bad::kSymlink:
      WriteFile(gw.state_dir() + "/real.json", good);
      ASSERT_EQ(symlink((gw.state_dir() + "/real.json").c_str(), path.c_str()), 0);
      break;
    case Bad::kFifo:
      ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
      break;
    case Bad::kDirectory:
      ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
      break;
    case Bad::kOtherOwner:
      WriteFile(path, good);
      ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
      break;
    case Bad::kGroupWritable:
      WriteFile(path, good, 0660);
      break;
    case Bad::kWorldWritable:
      WriteFile(path, good, 0646);
      break;
    case Bad::kHardLink:
      WriteFile(path, good);
      ASSERT_EQ(link(path.c_str(), (gw.state_dir() + "/alias.json").c_str()), 0);
      break;
    case Bad::kWrongPid:
      WriteFile(path, MarkerJson({id.pid + 1, id.start_time, id.boot_id}, absl::Now()));
      break;
    case Bad::kReusedPid:
      // A marker left for an earlier process that had the same pid.
      WriteFile(path, MarkerJson({id.pid, id.start_time - 50, id.boot_id}, absl::Now()));
      break;
    case Bad::kOtherBoot:
      WriteFile(path, MarkerJson({id.pid, id.start_time, "00000000-0000-0000-0000-000000000000"},
                                 absl::Now()));
      break;
    case Bad::kExpired:
      WriteFile(path, MarkerJson(id, absl::Now() - absl::Seconds(61)));
      break;
    case Bad::kFuture:
      WriteFile(path, MarkerJson(id, absl::Now() + absl::Minutes(10)));
      break;
    case Bad::kMalformed:
      WriteFile(path, "{this is not json");
      break;
    case Bad::kTruncated:
      WriteFile(path, good.substr(0, good.size() - 20));
      break;
    case Bad::kUnknownVersion:
      WriteFile(path, MarkerJson(id, absl::Now(), 2));
      break;
    case Bad::kEmpty:
      WriteFile(path, "");
      break;
  }
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 1) << status.Describe() << gw.Log();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "unexpected");
  std::string warning = absl::StrCat("ignoring ", path, ": ");
  std::string log = gw.Log();
  EXPECT_NE(log.find(warning), std::string::npos) << log;
  EXPECT_NE(log.find(c.reason), std::string::npos) << log;
  ASSERT_EQ(record["ignored_markers"].size(), 1u) << record.dump();
  EXPECT_NE(record["ignored_markers"][0].get<std::string>().find(c.reason), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, BadMarkerTest,
    ::testing::Values(
        BadCase{"symlink", Bad::kSymlink, "it is a symbolic link"},
        BadCase{"fifo", Bad::kFifo, "it is not a regular file"},
        BadCase{"directory", Bad::kDirectory, "it is not a regular file"},
        BadCase{"other_owner", Bad::kOtherOwner, "it is owned by uid 65534"},
        BadCase{"group_writable", Bad::kGroupWritable, "writable by group or others (mode 0660)"},
        BadCase{"world_writable", Bad::kWorldWritable, "writable by group or others (mode 0646)"},
        BadCase{"hard_link", Bad::kHardLink, "it has 2 hard links"},
        BadCase{"wrong_pid", Bad::kWrongPid, "not this process"},
        BadCase{"reused_pid", Bad::kReusedPid, "an earlier process with a reused pid"},
        BadCase{"other_boot", Bad::kOtherBoot, "written for boot 00000000-0000"},
        BadCase{"expired", Bad::kExpired, "expired: written at"},
        BadCase{"future", Bad::kFuture, "is in the future"},
        BadCase{"malformed", Bad::kMalformed, "malformed or truncated JSON"},
        BadCase{"truncated", Bad::kTruncated, "malformed or truncated JSON"},
        BadCase{"unknown_version", Bad::kUnknownVersion, "unknown version 2"},
        BadCase{"empty", Bad::kEmpty, "malformed or truncated JSON"}),
    [](const auto& info) { return info.param.name; });

TEST(MarkerTest, ShortTtlExpiresAMarkerThatWasValidWhenWritten) {
  Gateway::Options options;
  options.flags = {"--marker_ttl=1s"};
  Gateway gw("short-ttl", options);
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  WriteFile(gw.state_dir() + "/planned-stop.json", MarkerJson(ReadIdentity(gw), absl::Now()));
  absl::SleepFor(absl::Milliseconds(1500));
  SignalFromSibling(gw.pid(), SIGTERM);
  EXPECT_EQ(gw.Wait().code, 1);
  EXPECT_NE(gw.Log().find("older than the TTL of 1s"), std::string::npos) << gw.Log();
}

TEST(MarkerTest, HandWrittenTakeoverMarkerDecidesATakeover) {
  Gateway gw("takeover-marker");
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  WriteFile(gw.state_dir() + "/takeover.json", MarkerJson(ReadIdentity(gw), absl::Now()));
  // A planned-stop marker too: the takeover marker comes first in the chain.
  WriteFile(gw.state_dir() + "/planned-stop.json", MarkerJson(ReadIdentity(gw), absl::Now()));
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus status = gw.Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  EXPECT_EQ(gw.Record()["class"], "takeover");
  EXPECT_EQ(gw.Record()["detector"], "takeover_marker");
  EXPECT_FALSE(Exists(gw.state_dir() + "/takeover.json")) << "consumed when it decided";
  EXPECT_TRUE(Exists(gw.state_dir() + "/planned-stop.json")) << "not consumed: it decided nothing";
}

TEST(MarkerTest, MarkerWrittenAfterTheSignalDoesNotChangeTheVerdict) {
  Gateway::Options options;
  options.flags = {"--startup_delay_for_test=1s"};
  Gateway gw("marker-after-signal", options);
  ASSERT_TRUE(WaitFor([&] { return Exists(gw.state_dir() + "/instance.json"); },
                      absl::Seconds(10)));
  Identity id = ReadIdentity(gw);
  SignalFromSibling(gw.pid(), SIGTERM);
  WriteFile(gw.state_dir() + "/planned-stop.json", MarkerJson(id, absl::Now()));
  EXPECT_EQ(gw.Wait().code, 1);
  EXPECT_EQ(gw.Record()["class"], "unexpected");
}

}  // namespace
}  // namespace gateway::testing
