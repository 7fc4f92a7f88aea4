// Marker parsing and every reason a marker on disk is ignored.
#include "gateway/stop/markers.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class MarkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string root = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
    path_ = absl::StrCat(root, "/markers-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
    absl::StatusOr<StateDirectory> dir = StateDirectory::OpenOrCreate(path_);
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    self_.pid = 4242;
    self_.start_time_ticks = 1000;
    self_.boot_id = "boot-a";
    now_ = absl::Now();
  }

  Marker Good() {
    Marker m = NewMarker(self_, "test");
    m.written_at = now_ - absl::Seconds(1);
    return m;
  }
  std::string File() const { return dir_->PathOf(MarkerFileName(MarkerKind::kPlannedStop)); }
  void WriteRaw(const std::string& text, mode_t mode = 0600) {
    unlink(File().c_str());
    int fd = open(File().c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    fchmod(fd, mode);
    close(fd);
  }
  // Looks the marker up and returns the warning (empty when honoured).
  std::string Ignored() {
    StateDirMarkerStore store(&*dir_, kDefaultMarkerTtl);
    std::optional<Marker> found = store.Find(MarkerKind::kPlannedStop, self_, getuid(), now_);
    std::vector<std::string> warnings = store.TakeWarnings();
    if (found) {
      EXPECT_TRUE(warnings.empty());
      return "";
    }
    EXPECT_EQ(warnings.size(), 1u);
    return warnings.empty() ? "<no warning>" : warnings[0];
  }

  std::string path_;
  std::optional<StateDirectory> dir_;
  ProcessIdentity self_;
  absl::Time now_;
};

#define EXPECT_IGNORED_BECAUSE(reason)                                 \
  do {                                                                 \
    std::string why = Ignored();                                       \
    EXPECT_NE(why.find(reason), std::string::npos) << "warning: " << why; \
  } while (0)

TEST_F(MarkersTest, RoundTripsThroughJson) {
  Marker m = Good();
  absl::StatusOr<Marker> parsed = ParseMarker(MarkerToJson(m));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->target, m.target);
  EXPECT_EQ(parsed->nonce, m.nonce);
  EXPECT_EQ(parsed->reason, "test");
  EXPECT_LE(absl::AbsDuration(parsed->written_at - m.written_at), absl::Milliseconds(1));
}

TEST_F(MarkersTest, GoodMarkerIsHonouredAndConsumed) {
  ASSERT_TRUE(WriteMarker(*dir_, MarkerKind::kPlannedStop, Good()).ok());
  EXPECT_EQ(Ignored(), "");
  StateDirMarkerStore store(&*dir_, kDefaultMarkerTtl);
  std::optional<Marker> found = store.Find(MarkerKind::kPlannedStop, self_, getuid(), now_);
  ASSERT_TRUE(found);
  store.Consume(MarkerKind::kPlannedStop, *found);
  EXPECT_NE(access(File().c_str(), F_OK), 0);
}

TEST_F(MarkersTest, DryRunDoesNotConsume) {
  ASSERT_TRUE(WriteMarker(*dir_, MarkerKind::kPlannedStop, Good()).ok());
  StateDirMarkerStore store(&*dir_, kDefaultMarkerTtl, /*dry_run=*/true);
  std::optional<Marker> found = store.Find(MarkerKind::kPlannedStop, self_, getuid(), now_);
  ASSERT_TRUE(found);
  store.Consume(MarkerKind::kPlannedStop, *found);
  EXPECT_EQ(access(File().c_str(), F_OK), 0);
}

TEST_F(MarkersTest, ConsumeLeavesANewerMarkerAlone) {
  Marker first = Good();
  Marker second = Good();
  ASSERT_TRUE(WriteMarker(*dir_, MarkerKind::kPlannedStop, second).ok());
  StateDirMarkerStore store(&*dir_, kDefaultMarkerTtl);
  store.Consume(MarkerKind::kPlannedStop, first);
  EXPECT_EQ(access(File().c_str(), F_OK), 0);
}

TEST_F(MarkersTest, AbsentMarkerIsSilent) {
  StateDirMarkerStore store(&*dir_, kDefaultMarkerTtl);
  EXPECT_FALSE(store.Find(MarkerKind::kTakeover, self_, getuid(), now_));
  EXPECT_TRUE(store.TakeWarnings().empty());
}

TEST_F(MarkersTest, SymlinkIsIgnored) {
  std::string target = path_ + "/elsewhere.json";
  WriteRaw(MarkerToJson(Good()));
  ASSERT_EQ(rename(File().c_str(), target.c_str()), 0);
  ASSERT_EQ(symlink(target.c_str(), File().c_str()), 0);
  EXPECT_IGNORED_BECAUSE("symbolic link");
}

TEST_F(MarkersTest, FifoIsIgnoredWithoutBlocking) {
  ASSERT_EQ(mkfifo(File().c_str(), 0600), 0);
  EXPECT_IGNORED_BECAUSE("not a regular file");
}

TEST_F(MarkersTest, DirectoryIsIgnored) {
  ASSERT_EQ(mkdir(File().c_str(), 0700), 0);
  EXPECT_IGNORED_BECAUSE("not a regular file");
}

TEST_F(MarkersTest, GroupOrWorldWritableIsIgnored) {
  WriteRaw(MarkerToJson(Good()), 0620);
  EXPECT_IGNORED_BECAUSE("writable by group or others");
  WriteRaw(MarkerToJson(Good()), 0602);
  EXPECT_IGNORED_BECAUSE("writable by group or others");
}

TEST_F(MarkersTest, OwnedByAnotherUserIsIgnored) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  WriteRaw(MarkerToJson(Good()));
  ASSERT_EQ(chown(File().c_str(), 65534, 65534), 0);
  EXPECT_IGNORED_BECAUSE("owned by uid 65534");
}

TEST_F(MarkersTest, HardLinkedFileIsIgnored) {
  WriteRaw(MarkerToJson(Good()));
  ASSERT_EQ(link(File().c_str(), (path_ + "/second-name").c_str()), 0);
  EXPECT_IGNORED_BECAUSE("2 hard links");
}

TEST_F(MarkersTest, WrongPidIsIgnored) {
  Marker m = Good();
  m.target.pid = 4243;
  WriteRaw(MarkerToJson(m));
  EXPECT_IGNORED_BECAUSE("names pid 4243, not this process");
}

TEST_F(MarkersTest, ReusedPidWithAnotherStartTimeIsIgnored) {
  Marker m = Good();
  m.target.start_time_ticks = 999;
  WriteRaw(MarkerToJson(m));
  EXPECT_IGNORED_BECAUSE("reused pid");
}

TEST_F(MarkersTest, OtherBootIsIgnored) {
  Marker m = Good();
  m.target.boot_id = "boot-b";
  WriteRaw(MarkerToJson(m));
  EXPECT_IGNORED_BECAUSE("written for boot boot-b");
}

TEST_F(MarkersTest, ExpiredMarkerIsIgnored) {
  Marker m = Good();
  m.written_at = now_ - absl::Seconds(61);
  WriteRaw(MarkerToJson(m));
  EXPECT_IGNORED_BECAUSE("expired");
}

TEST_F(MarkersTest, FutureMarkerIsIgnored) {
  Marker m = Good();
  m.written_at = now_ + absl::Minutes(5);
  WriteRaw(MarkerToJson(m));
  EXPECT_IGNORED_BECAUSE("in the future");
}

TEST_F(MarkersTest, MalformedAndTruncatedJsonAreIgnored) {
  WriteRaw("not json at all");
  EXPECT_IGNORED_BECAUSE("malformed or truncated JSON");
  std::string full = MarkerToJson(Good());
  WriteRaw(full.substr(0, full.size() / 2));
  EXPECT_IGNORED_BECAUSE("malformed or truncated JSON");
  WriteRaw("");
  EXPECT_IGNORED_BECAUSE("malformed or truncated JSON");
  WriteRaw("[1,2]");
  EXPECT_IGNORED_BECAUSE("not an object");
}

TEST_F(MarkersTest, UnknownVersionIsIgnored) {
  Marker m = Good();
  m.version = 2;
  WriteRaw(MarkerToJson(m));
  EXPECT_IGNORED_BECAUSE("unknown version 2");
}

TEST_F(MarkersTest, MissingOrMistypedFieldsAreIgnored) {
  WriteRaw(R"({"version":1,"target_pid":"4242","target_start_time":1000,)"
           R"("target_boot_id":"boot-a","written_at":"2026-01-01T00:00:00Z"})");
  EXPECT_IGNORED_BECAUSE("field 'target_pid'");
  WriteRaw(R"({"version":1,"target_pid":4242,"target_start_time":1000,"target_boot_id":"boot-a"})");
  EXPECT_IGNORED_BECAUSE("field 'written_at'");
  WriteRaw(R"({"version":1,"target_pid":4242,"target_start_time":1000,)"
           R"("target_boot_id":"boot-a","written_at":"yesterday"})");
  EXPECT_IGNORED_BECAUSE("written_at");
}

// Found by //tests/fuzz: get<pid_t>() wrapped 2^32 + 4242 to 4242, so a
// marker could name this process while its JSON says another pid.
TEST_F(MarkersTest, OutOfRangeNumbersAreIgnoredNotWrapped) {
  WriteRaw(R"({"version":1,"target_pid":4294971538,"target_start_time":1000,)"
           R"("target_boot_id":"boot-a","written_at":")" + FormatRfc3339(now_) + R"("})");
  EXPECT_IGNORED_BECAUSE("field 'target_pid'");
  WriteRaw(R"({"version":4294967297,"target_pid":4242,"target_start_time":1000,)"
           R"("target_boot_id":"boot-a","written_at":")" + FormatRfc3339(now_) + R"("})");
  EXPECT_IGNORED_BECAUSE("unknown version 4294967297");
  WriteRaw(R"({"version":1,"target_pid":-4242,"target_start_time":1000,)"
           R"("target_boot_id":"boot-a","written_at":")" + FormatRfc3339(now_) + R"("})");
  EXPECT_IGNORED_BECAUSE("field 'target_pid'");
}

TEST_F(MarkersTest, OversizedFileIsIgnored) {
  WriteRaw(std::string(kMaxMarkerBytes + 1, ' '));
  EXPECT_IGNORED_BECAUSE("too large");
}

}  // namespace
}  // namespace gateway
