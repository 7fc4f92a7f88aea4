// Registry building, freezing and chain construction.
#include "gateway/stop/detector_registry.h"

#include "gateway/stop/detector_chain.h"
#include "gateway/stop/stop_context_testing.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

class NamedDetector : public StopReasonDetector {
 public:
  NamedDetector(std::string name, std::optional<StopClass> decision)
      : name_(std::move(name)), decision_(decision) {}
  absl::string_view name() const override { return name_; }
  std::optional<Verdict> Detect(const StopContext& ctx) override {
    ++calls;
    if (!decision_) return std::nullopt;
    Verdict v;
    v.stop_class = *decision_;
    v.evidence = name_;
    return v;
  }
  int calls = 0;

 private:
  std::string name_;
  std::optional<StopClass> decision_;
};

DetectorRegistration Registration(const std::string& name,
                                  const std::string& reported_name = "") {
  std::string reported = reported_name.empty() ? name : reported_name;
  return {name, [reported] { return std::make_unique<NamedDetector>(reported, std::nullopt); },
          "test"};
}

TEST(DetectorRegistryTest, DuplicateNameIsRejected) {
  DetectorRegistry::Builder builder;
  builder.Add(Registration("alpha"));
  builder.Add(Registration("alpha"));
  absl::StatusOr<DetectorRegistry> registry = std::move(builder).Build();
  ASSERT_FALSE(registry.ok());
  EXPECT_NE(registry.status().message().find("registered twice"), std::string::npos);
}

TEST(DetectorRegistryTest, EmptyOrMalformedNameIsRejected) {
  for (const char* bad : {"", "Has Space", "UPPER", "semi;colon"}) {
    DetectorRegistry::Builder builder;
    builder.Add(Registration(bad, "x"));
    EXPECT_FALSE(std::move(builder).Build().ok()) << bad;
  }
}

TEST(DetectorRegistryTest, DetectorMustReportItsRegisteredName) {
  DetectorRegistry::Builder builder;
  builder.Add(Registration("alpha", "beta"));
  absl::StatusOr<DetectorRegistry> registry = std::move(builder).Build();
  ASSERT_FALSE(registry.ok());
  EXPECT_NE(registry.status().message().find("calls itself 'beta'"), std::string::npos);
}

TEST(DetectorRegistryTest, ChainFollowsTheGivenOrder) {
  DetectorRegistry::Builder builder;
  builder.Add(Registration("alpha"));
  builder.Add(Registration("beta"));
  absl::StatusOr<DetectorRegistry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok());
  auto chain = registry->MakeChain({"beta", "alpha"});
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0]->name(), "beta");
  EXPECT_EQ((*chain)[1]->name(), "alpha");
}

TEST(DetectorRegistryTest, UnknownDuplicatedOrEmptyChainEntriesAreErrors) {
  DetectorRegistry::Builder builder;
  builder.Add(Registration("alpha"));
  absl::StatusOr<DetectorRegistry> registry = std::move(builder).Build();
  ASSERT_TRUE(registry.ok());
  absl::Status unknown = registry->MakeChain({"alpha", "gamma"}).status();
  EXPECT_NE(unknown.message().find("unknown detector 'gamma'"), std::string::npos);
  absl::Status twice = registry->MakeChain({"alpha", "alpha"}).status();
  EXPECT_NE(twice.message().find("listed twice"), std::string::npos);
  absl::Status empty = registry->MakeChain(SplitDetectorList("alpha,,")).status();
  EXPECT_NE(empty.message().find("empty name"), std::string::npos);
  EXPECT_FALSE(registry->MakeChain({}).ok());
}

TEST(DetectorRegistryTest, SplitTrimsWhitespace) {
  EXPECT_EQ(SplitDetectorList(" a, b ,c"), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(DetectorChainTest, FirstVerdictWinsAndLaterDetectorsAreNotAsked) {
  DetectorChain chain;
  chain.push_back(std::make_unique<NamedDetector>("silent", std::nullopt));
  chain.push_back(std::make_unique<NamedDetector>("planner", StopClass::kPlanned));
  auto* last = new NamedDetector("taker", StopClass::kTakeover);
  chain.emplace_back(last);
  Verdict verdict = ClassifyStop(chain, ContextForTest());
  EXPECT_EQ(verdict.stop_class, StopClass::kPlanned);
  EXPECT_EQ(verdict.detector, "planner");
  EXPECT_EQ(last->calls, 0);
}

TEST(DetectorChainTest, NoVerdictMeansUnexpectedWithoutDetector) {
  DetectorChain chain;
  chain.push_back(std::make_unique<NamedDetector>("silent", std::nullopt));
  Verdict verdict = ClassifyStop(chain, ContextForTest());
  EXPECT_EQ(verdict.stop_class, StopClass::kUnexpected);
  EXPECT_EQ(verdict.detector, "");
  EXPECT_NE(verdict.evidence.find("SIGTERM from pid 777"), std::string::npos);
}

}  // namespace
}  // namespace gateway
