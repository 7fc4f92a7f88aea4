// The takeover_marker detector on fabricated contexts. Marker parsing and
// each rejection reason on disk are tested in gateway/stop/markers_test.cc.
#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class TakeoverMarkerDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override { ctx_.markers = &store_; }
  Marker MarkerForSelf() { return MarkerForTest(ctx_, absl::Seconds(1), 5000, "replace"); }
  std::unique_ptr<StopReasonDetector> detector_ = DetectorForTest("takeover_marker");
  FakeMarkerStore store_;
  StopContext ctx_ = ContextForTest();
};

TEST_F(TakeoverMarkerDetectorTest, MarkerNamingThisProcessIsATakeoverAndIsConsumed) {
  store_.Put(MarkerKind::kTakeover, MarkerForSelf());
  std::optional<Verdict> verdict = detector_->Detect(ctx_);
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(verdict->stop_class, StopClass::kTakeover);
  EXPECT_NE(verdict->evidence.find("written by pid 5000"), std::string::npos);
  EXPECT_EQ(store_.consumed(), 1);
  EXPECT_FALSE(store_.Has(MarkerKind::kTakeover));
}

TEST_F(TakeoverMarkerDetectorTest, PlannedStopMarkerIsNotATakeover) {
  store_.Put(MarkerKind::kPlannedStop, MarkerForSelf());
  EXPECT_FALSE(detector_->Detect(ctx_).has_value());
  EXPECT_EQ(store_.consumed(), 0);
}

TEST_F(TakeoverMarkerDetectorTest, ReusedPidIsIgnoredAndNotConsumed) {
  Marker m = MarkerForSelf();
  m.target.start_time_ticks -= 1000;
  store_.Put(MarkerKind::kTakeover, m);
  EXPECT_FALSE(detector_->Detect(ctx_).has_value());
  EXPECT_EQ(store_.consumed(), 0);
  std::vector<std::string> warnings = store_.TakeWarnings();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("reused pid"), std::string::npos) << warnings[0];
}

TEST_F(TakeoverMarkerDetectorTest, NoStoreMeansNoOpinion) {
  ctx_.markers = nullptr;
  EXPECT_FALSE(detector_->Detect(ctx_).has_value());
}

}  // namespace
}  // namespace gateway
