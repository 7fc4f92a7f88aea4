// The exit policy table and its flag syntax.
#include "gateway/stop/exit_policy.h"

#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(ExitPolicyTest, DefaultsMatchTheSpec) {
  ExitPolicy policy;
  EXPECT_EQ(policy.ExitCodeFor(StopClass::kTakeover), 0);
  EXPECT_EQ(policy.ExitCodeFor(StopClass::kPlanned), 0);
  EXPECT_EQ(policy.ExitCodeFor(StopClass::kUnexpected), 1);
}

TEST(ExitPolicyTest, OverridesOnlyTheNamedClasses) {
  absl::StatusOr<ExitPolicy> policy = ExitPolicy::Parse("unexpected=3, takeover=10");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->ExitCodeFor(StopClass::kUnexpected), 3);
  EXPECT_EQ(policy->ExitCodeFor(StopClass::kTakeover), 10);
  EXPECT_EQ(policy->ExitCodeFor(StopClass::kPlanned), 0);
  EXPECT_EQ(policy->ToString(), "takeover=10,planned=0,unexpected=3");
}

TEST(ExitPolicyTest, BadEntriesAreErrors) {
  for (const char* bad : {"crashed=1", "planned=256", "planned=-1", "planned=x", "planned",
                          "planned=0,planned=1"}) {
    EXPECT_FALSE(ExitPolicy::Parse(bad).ok()) << bad;
  }
  EXPECT_TRUE(ExitPolicy::Parse("").ok());
}

}  // namespace
}  // namespace gateway
