// The planned_stop_file detector on fabricated contexts. Marker parsing and
// each rejection reason on disk are tested in gateway/stop/markers_test.cc.
#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class PlannedStopFileDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override { ctx_.markers = &store_; }
  Marker MarkerForSelf() { return MarkerForTest(ctx_, absl::Seconds(3), 6000, "deploy 42"); }
  std::unique_ptr<StopReasonDetector> detector_ = DetectorForTest("planned_stop_file");
  FakeMarkerStore store_;
  StopContext ctx_ = ContextForTest();
};

TEST_F(PlannedStopFileDetectorTest, FreshMarkerMakesAStrayKillPlanned) {
  store_.Put(MarkerKind::kPlannedStop, MarkerForSelf());
  std::optional<Verdict> verdict = detector_->Detect(ctx_);
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kPlanned);
  EXPECT_NE(verdict->evidence.find("reason: deploy 42"), std::string::npos);
  EXPECT_EQ(store_.consumed(), 1);
}

TEST_F(PlannedStopFileDetectorTest, ExpiredMarkerIsIgnored) {
  Marker m = MarkerForSelf();
  m.written_at = ctx_.now - absl::Seconds(61);
  store_.Put(MarkerKind::kPlannedStop, m);
  EXPECT_FALSE(detector_->Detect(ctx_).has_value());
  EXPECT_EQ(store_.consumed(), 0);
  std::vector<std::string> warnings = store_.TakeWarnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("expired"), std::string::npos);
}

TEST_F(PlannedStopFileDetectorTest, MarkerForAnotherPidIsIgnored) {
  Marker m = MarkerForSelf();
  m.target.pid = 4243;
  store_.Put(MarkerKind::kPlannedStop, m);
  EXPECT_FALSE(detector_->Detect(ctx_).has_value());
}

TEST_F(PlannedStopFileDetectorTest, MarkerFromAnotherBootIsIgnored) {
  Marker m = MarkerForSelf();
  m.target.boot_id = "another-boot";
  store_.Put(MarkerKind::kPlannedStop, m);
  EXPECT_FALSE(detector_->Detect(ctx_).has_value());
}

}  // namespace
}  // namespace gateway
