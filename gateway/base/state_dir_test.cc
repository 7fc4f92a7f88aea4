// State directory checks, the default path and the instance lock.
#include "gateway/base/state_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

std::string TempPath(const std::string& name) {
  std::string root = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  std::string path = absl::StrCat(root, "/statedir-", name);
  std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  return path;
}

TEST(StateDirectoryTest, CreatesMissingDirectoryPrivately) {
  std::string path = TempPath("create") + "/nested/deeper";
  absl::StatusOr<StateDirectory> dir = StateDirectory::OpenOrCreate(path);
  ASSERT_TRUE(dir.ok()) << dir.status();
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(StateDirectoryTest, RefusesSymlink) {
  std::string real = TempPath("real");
  std::string link = TempPath("link");
  ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
  absl::Status status = StateDirectory::OpenOrCreate(link).status();
  EXPECT_NE(status.message().find("symbolic link"), std::string::npos) << status;
}

TEST(StateDirectoryTest, RefusesWritableByOthers) {
  std::string path = TempPath("open");
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  ASSERT_EQ(chmod(path.c_str(), 0777), 0);
  absl::Status status = StateDirectory::OpenOrCreate(path).status();
  EXPECT_NE(status.message().find("writable by group or others"), std::string::npos) << status;
}

TEST(StateDirectoryTest, RefusesOtherOwner) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user";
  std::string path = TempPath("owned");
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  absl::Status status = StateDirectory::OpenOrCreate(path).status();
  EXPECT_NE(status.message().find("owned by uid 65534"), std::string::npos) << status;
}

TEST(StateDirectoryTest, RefusesAFile) {
  std::string path = TempPath("file");
  ASSERT_EQ(close(creat(path.c_str(), 0600)), 0);
  absl::Status status = StateDirectory::OpenOrCreate(path).status();
  EXPECT_NE(status.message().find("not a directory"), std::string::npos) << status;
}

TEST(StateDirectoryTest, RefusesRelativePath) {
  EXPECT_FALSE(StateDirectory::OpenOrCreate("relative/dir").ok());
}

TEST(StateDirectoryTest, OpenExistingDoesNotCreate) {
  std::string path = TempPath("absent");
  EXPECT_TRUE(absl::IsNotFound(StateDirectory::OpenExisting(path).status()));
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST(StateDirectoryTest, DefaultPathFollowsTheDocumentedOrder) {
  EXPECT_EQ(DefaultStateDirPath({{"STATE_DIRECTORY", "/var/lib/gw:/var/lib/other"},
                                 {"RUNTIME_DIRECTORY", "/run/gw"}},
                                1000),
            "/var/lib/gw");
  EXPECT_EQ(DefaultStateDirPath({{"RUNTIME_DIRECTORY", "/run/gw"}}, 1000), "/run/gw");
  EXPECT_EQ(DefaultStateDirPath({{"XDG_RUNTIME_DIR", "/run/user/1000"}}, 1000),
            "/run/user/1000/gateway");
  EXPECT_EQ(DefaultStateDirPath({}, 0), "/run/gateway");
  EXPECT_EQ(DefaultStateDirPath({{"HOME", "/home/ann"}}, 1000), "/home/ann/.local/state/gateway");
  EXPECT_EQ(DefaultStateDirPath({}, 1000), "/tmp/gateway-1000");
}

TEST(InstanceLockTest, SecondLockOnTheSameDirectoryIsRefused) {
  std::string path = TempPath("lock");
  absl::StatusOr<StateDirectory> dir = StateDirectory::OpenOrCreate(path);
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<InstanceLock> first = InstanceLock::Acquire(*dir);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<InstanceLock> second = InstanceLock::Acquire(*dir);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsUnavailable(second.status()));
  EXPECT_NE(second.status().message().find("already running"), std::string::npos);
}

TEST(StateDirectoryTest, AtomicWriteReplacesAndLeavesNoTemporaryFile) {
  std::string path = TempPath("atomic");
  absl::StatusOr<StateDirectory> dir = StateDirectory::OpenOrCreate(path);
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(dir->WriteAtomically("x.json", "one").ok());
  ASSERT_TRUE(dir->WriteAtomically("x.json", "two").ok());
  EXPECT_EQ(*dir->Read("x.json"), "two");
  EXPECT_EQ(std::system(absl::StrCat("test -z \"$(ls -A ", path, " | grep tmp)\"").c_str()), 0);
}

TEST(StateDirectoryTest, TemporaryFilesOfDeadWritersAreRemoved) {
  std::string path = TempPath("stale");
  absl::StatusOr<StateDirectory> dir = StateDirectory::OpenOrCreate(path);
  ASSERT_TRUE(dir.ok());
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_EQ(waitpid(gone, nullptr, 0), gone);  // a pid that no longer exists
  const std::string dead = absl::StrCat(".last-shutdown.json.", gone, ".tmp");
  const std::string dead_marker = absl::StrCat(".planned-stop.json.", gone, ".tmp");
  const std::string live = absl::StrCat(".instance.json.", getpid(), ".tmp");
  const std::vector<std::string> not_ours = {"notes.tmp", ".tmp", "..1.tmp",
                                             absl::StrCat(".x.", gone, ".tmp.keep"),
                                             ".x.abc.tmp", ".x.-1.tmp"};
  for (const std::string& name : {dead, dead_marker, live}) {
    ASSERT_TRUE(dir->WriteAtomically(name, "partial").ok());
  }
  for (const std::string& name : not_ours) ASSERT_TRUE(dir->WriteAtomically(name, "x").ok());

  EXPECT_EQ(dir->RemoveStaleTempFiles(), 2);
  EXPECT_FALSE(dir->Read(dead).ok());
  EXPECT_FALSE(dir->Read(dead_marker).ok());
  EXPECT_TRUE(dir->Read(live).ok()) << "a live writer's file was removed";
  for (const std::string& name : not_ours) EXPECT_TRUE(dir->Read(name).ok()) << name;
}

}  // namespace
}  // namespace gateway
