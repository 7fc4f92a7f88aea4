// Unit tests for the CPU-quota and cgroup parsing in resources.cc.
#include "gateway/base/resources.h"

#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(CpusFromCpuMaxTest, QuotaRoundsUpToWholeCpus) {
  EXPECT_EQ(CpusFromCpuMax("200000 100000\n"), 2);
  EXPECT_EQ(CpusFromCpuMax("150000 100000"), 2);
  EXPECT_EQ(CpusFromCpuMax("50000 100000"), 1);
  EXPECT_EQ(CpusFromCpuMax("6400000 100000"), 64);
}

TEST(CpusFromCpuMaxTest, NoQuotaOrNonsenseIsNoLimit) {
  EXPECT_EQ(CpusFromCpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax(""), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("-1 100000"), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("abc def"), std::nullopt);
  EXPECT_EQ(CpusFromCpuMax("100000 0"), std::nullopt);
}

TEST(UnifiedCgroupPathTest, FindsTheV2LineAmongV1Lines) {
  EXPECT_EQ(UnifiedCgroupPath("4:memory:/x\n0::/system.slice/gw.service\n"),
            "/system.slice/gw.service");
  EXPECT_EQ(UnifiedCgroupPath("0::/\n"), "/");
  EXPECT_EQ(UnifiedCgroupPath("4:memory:/x\n"), std::nullopt);
}

TEST(UsableCpuCountTest, IsWithinTheAffinityMask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  int cpus = UsableCpuCount();
  EXPECT_GE(cpus, 1);
  EXPECT_LE(cpus, CPU_COUNT(&set));
}

TEST(RaiseDescriptorLimitTest, SoftLimitReachesTheHardLimit) {
  rlimit limit = RaiseDescriptorLimit();
  rlimit now = {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, now.rlim_max);
  EXPECT_EQ(limit.rlim_cur, now.rlim_cur);
}

}  // namespace
}  // namespace gateway
