// Parsing /proc and reading this process's own evidence.
#include "gateway/base/proc.h"

#include <signal.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(ProcTest, ParsesCommWithSpacesAndParentheses) {
  std::string text = "42 (we (ird) name) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 "
                     "1000 10 18446744073709551615";
  absl::StatusOr<ProcStat> stat = ParseProcStat(text);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->comm, "we (ird) name");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->ppid, 7);
  EXPECT_EQ(stat->start_time_ticks, 98765u);
}

TEST(ProcTest, TruncatedStatIsAnError) {
  EXPECT_FALSE(ParseProcStat("42 (x) S 1 2").ok());
  EXPECT_FALSE(ParseProcStat("garbage").ok());
}

TEST(ProcTest, OwnIdentityIsAliveAndAStaleOneIsNot) {
  absl::StatusOr<ProcessIdentity> self = ReadProcessIdentity(getpid());
  ASSERT_TRUE(self.ok());
  EXPECT_TRUE(IsAlive(*self));
  ProcessIdentity reused = *self;
  reused.start_time_ticks += 1;
  EXPECT_FALSE(IsAlive(reused));
  ProcessIdentity other_boot = *self;
  other_boot.boot_id = "not-this-boot";
  EXPECT_FALSE(IsAlive(other_boot));
}

TEST(ProcTest, ReadsOwnInfoAndEnvironment) {
  ProcessInfo info = ReadProcessInfo(getpid());
  EXPECT_TRUE(info.readable);
  EXPECT_EQ(info.ppid, getppid());
  ASSERT_TRUE(info.uid.has_value());
  EXPECT_EQ(*info.uid, getuid());
  EXPECT_EQ(ParseEnviron(std::string("A=1\0B=x=y\0", 10)),
            (Environment{{"A", "1"}, {"B", "x=y"}}));
}

TEST(ProcTest, SignalNamesRoundTrip) {
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(ParseSignal("TERM"), SIGTERM);
  EXPECT_EQ(ParseSignal("sigint"), SIGINT);
  EXPECT_EQ(ParseSignal("15"), SIGTERM);
  EXPECT_EQ(ParseSignal("BOGUS"), std::nullopt);
  EXPECT_EQ(ParseSignal("0"), std::nullopt);
}

}  // namespace
}  // namespace gateway
