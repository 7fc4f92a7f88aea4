// Black-box crash consistency (issue 8): SIGKILL the real gateway at
// random points of start-up, serving and its stop sequence, many times
// over one state directory. Whatever instant the kill lands on, every
// file the gateway writes (stop record, markers, instance.json, running
// sentinel) is absent or whole, and the next start reports the unclean
// exit of the killed process that had written its sentinel.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <optional>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

constexpr int kIterations = 200;

// Files in the state directory that must never be torn.
const char* const kJsonFiles[] = {"last-shutdown.json", "planned-stop.json", "takeover.json",
                                  "instance.json", "running"};

// The pid named by the running sentinel, if one is on disk.
std::optional<pid_t> SentinelPid(const std::string& state_dir) {
  if (!Exists(state_dir + "/running")) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(ReadText(state_dir + "/running"), nullptr, false);
  if (!j.is_object() || !j["pid"].is_number_integer()) return std::nullopt;
  return j["pid"].get<pid_t>();
}

int LeftoverTempFiles(const std::string& state_dir) {
  int n = 0;
  DIR* dir = opendir(state_dir.c_str());
  if (dir == nullptr) return 0;
  while (dirent* entry = readdir(dir)) {
    if (absl::EndsWith(entry->d_name, ".tmp")) ++n;
  }
  closedir(dir);
  return n;
}

TEST(CrashConsistencyTest, SigkillAnywhereLeavesWholeFilesAndTheNextStartSaysUnclean) {
  const std::string state_dir = FreshTempDir("crash-state") + "/state";
  EchoServer upstream;
  std::mt19937 random(20261203);
  std::optional<pid_t> unclean;  // a killed process whose sentinel is on disk
  int kills[3] = {0, 0, 0}, reported = 0;
  int cleaned = 0;  // starts that removed temporary files left by a kill
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE(absl::StrCat("iteration ", i));
    Gateway::Options options;
    options.state_dir = state_dir;
    options.flags = {absl::StrCat("--route=127.0.0.1:", FreePort(), "=127.0.0.1:", upstream.port())};
    Gateway gw(absl::StrCat("crash", i % 4), options);  // work dirs reused: bounded disk
    int phase = static_cast<int>(random() % 3);  // 0 start-up, 1 serving, 2 stopping
    if (phase == 0) {
      absl::SleepFor(absl::Microseconds(random() % 60000));
    } else {
      ASSERT_TRUE(gw.WaitReady()) << gw.Log();
      if (unclean) {
        EXPECT_TRUE(absl::StrContains(gw.Log(), absl::StrCat("(pid ", *unclean, ") did not exit cleanly")))
            << gw.Log();
        ++reported;
      }
      if (phase == 2) {
        if (random() % 2) Gatewayctl({"mark-planned", "--state_dir=" + state_dir});
        gw.child().Signal(SIGTERM);
      }
      absl::SleepFor(absl::Microseconds(random() % (phase == 2 ? 8000 : 20000)));
    }
    gw.child().Signal(SIGKILL);
    gw.Wait();
    ++kills[phase];
    if (absl::StrContains(gw.Log(), "temporary file(s) of writes interrupted")) ++cleaned;
    for (const char* name : kJsonFiles) {
      std::string path = state_dir + "/" + name;
      if (!Exists(path)) continue;
      EXPECT_TRUE(nlohmann::json::parse(ReadText(path), nullptr, false).is_object())
          << name << " is torn: '" << ReadText(path) << "'";
    }
    std::optional<pid_t> sentinel = SentinelPid(state_dir);
    if (sentinel) {
      // Ours, or the earlier victim's when this one died before writing its own.
      EXPECT_TRUE(*sentinel == gw.pid() || (unclean && *sentinel == *unclean)) << *sentinel;
    }
    unclean = sentinel;
  }
  // A last, clean run: its own record carries the verdict on the one before.
  Gateway::Options options;
  options.state_dir = state_dir;
  Gateway last("crash-last", options);
  ASSERT_TRUE(last.WaitReady()) << last.Log();
  last.child().Signal(SIGTERM);
  ExitStatus exit = last.Wait();
  ASSERT_TRUE(exit.exited) << exit.Describe();
  nlohmann::json record = last.Record();
  if (unclean) {
    EXPECT_EQ(record["previous_exit"], "unclean") << record;
  } else {
    EXPECT_NE(record["previous_exit"], "unclean") << record;
  }
  // Temporary files of writes the kills interrupted were removed by the
  // last start (their writers are gone).
  EXPECT_EQ(LeftoverTempFiles(state_dir), 0);
  std::printf("%d kills (start-up %d, serving %d, stopping %d); unclean exit reported %d times; "
              "%d starts removed temporary files of interrupted writes\n",
              kIterations, kills[0], kills[1], kills[2], reported, cleaned);
}

}  // namespace
}  // namespace gateway::testing
