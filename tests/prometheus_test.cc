// Black-box, with a real Prometheus server (Debian's prometheus, run on
// loopback with a 1 s scrape interval): stops stay visible to monitoring
// across restarts. The process that stops is gone before the next scrape,
// so each new instance exports what the state directory's stop history
// knows (gateway_recorded_stops_total{class,detector}, unclean exits as
// their own class, gateway_last_stop_timestamp_seconds), and `promtool
// check metrics` finds nothing to complain about in /metrics.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// A Prometheus server scraping `target`'s /metrics every second, with its
// storage in the test's temporary directory.
class PrometheusServer {
 public:
  explicit PrometheusServer(const std::string& target) {
    std::string dir = FreshTempDir("prometheus");
    std::ofstream(dir + "/prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        << "scrape_configs:\n  - job_name: gateway\n    static_configs:\n"
        << "      - targets: ['" << target << "']\n";
    address_ = absl::StrCat("127.0.0.1:", FreePort());
    Child::Options options;
    options.argv = {kPrometheus, "--config.file=" + dir + "/prometheus.yml",
                    "--storage.tsdb.path=" + dir + "/data", "--web.listen-address=" + address_,
                    "--log.level=warn"};
    options.env = BaseEnvironment();
    options.output_dir = dir;
    child_ = std::make_unique<Child>(options);
  }
  ~PrometheusServer() {
    if (child_->Running()) {
      child_->Signal(SIGTERM);
      child_->Wait(absl::Seconds(20));  // SIGKILLed by ~Child if still running
    }
  }

  bool WaitReady() {
    return WaitFor([&] { return HttpGet(address_, "/-/ready").status == 200; },
                   absl::Seconds(60));
  }
  // The instant query's samples as label value of `by` -> value.
  std::map<std::string, double> Query(const std::string& promql, const std::string& by) {
    std::map<std::string, double> samples;
    HttpReply reply = HttpGet(address_, "/api/v1/query?query=" + UrlEncode(promql));
    nlohmann::json j = nlohmann::json::parse(reply.body, nullptr, false);
    if (reply.status != 200 || !j.is_object() || j.value("status", "") != "success") {
      last_error_ = absl::StrCat("HTTP ", reply.status, ": ", reply.body);
      return samples;
    }
    for (const nlohmann::json& sample : j["data"]["result"]) {
      std::string key = sample["metric"].value(by, "");
      samples[key] = std::stod(sample["value"][1].get<std::string>());
    }
    return samples;
  }
  std::string Log() const { return child_->Stderr(); }
  const std::string& last_error() const { return last_error_; }

 private:
  std::string address_;
  std::string last_error_;
  std::unique_ptr<Child> child_;
};

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* program : {kPrometheus, kPromtool}) {
      if (access(program, X_OK) != 0) {
        GTEST_SKIP() << program << " is missing: install Debian's prometheus package "
                     << "(./bazelw installs it)";
      }
    }
    admin_ = absl::StrCat("127.0.0.1:", FreePort());
    state_dir_ = FreshTempDir("prometheus-state");
    rmdir(state_dir_.c_str());  // the gateway creates it 0700
  }

  std::unique_ptr<Gateway> Start() {
    Gateway::Options options;
    options.state_dir = state_dir_;
    options.flags = {"--admin=" + admin_};
    auto gw = std::make_unique<Gateway>(TestName(), options);
    EXPECT_TRUE(gw->WaitReady()) << gw->Log();
    return gw;
  }

  std::string admin_;
  std::string state_dir_;
};

TEST_F(PrometheusTest, RecordedStopsByClassReachPrometheusAcrossRestarts) {
  PrometheusServer prometheus(admin_);
  ASSERT_TRUE(prometheus.WaitReady()) << prometheus.Log();

  auto planned = Start();  // Ctrl-C: planned by interactive
  SignalFromSibling(planned->pid(), SIGINT);
  EXPECT_EQ(planned->Wait().code, 0) << planned->Log();
  auto unexpected = Start();  // a stray kill: unexpected
  SignalFromSibling(unexpected->pid(), SIGTERM);
  EXPECT_EQ(unexpected->Wait().code, 1) << unexpected->Log();
  std::string last_exit = unexpected->Record().value("exited_at", "");
  auto killed = Start();  // no record at all
  killed->child().Signal(SIGKILL);
  EXPECT_EQ(killed->Wait().signal, SIGKILL);
  auto current = Start();

  // The instance scraped now never stopped; everything it reports comes
  // from the history it found.
  const std::map<std::string, double> expected = {
      {"planned", 1}, {"unexpected", 1}, {"unclean", 1}, {"takeover", 0}};
  std::map<std::string, double> by_class;
  EXPECT_TRUE(WaitFor(
      [&] {
        by_class = prometheus.Query("sum by (class) (gateway_recorded_stops_total)", "class");
        return by_class == expected;
      },
      absl::Seconds(60)))
      << "last answer: " << nlohmann::json(by_class).dump() << " " << prometheus.last_error()
      << prometheus.Log();
  std::map<std::string, double> planned_by = prometheus.Query(
      "gateway_recorded_stops_total{class=\"planned\"}", "detector");
  EXPECT_EQ(planned_by, (std::map<std::string, double>{{"interactive", 1}}));

  absl::Time expected_last;
  std::string error;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, last_exit, &expected_last, &error))
      << last_exit << ": " << error;
  std::map<std::string, double> last = prometheus.Query("gateway_last_stop_timestamp_seconds", "");
  ASSERT_EQ(last.size(), 1u) << prometheus.last_error();
  EXPECT_NEAR(last[""], absl::ToUnixMillis(expected_last) / 1000.0, 0.002);

  // promtool's linter on what the gateway serves.
  HttpReply metrics = HttpGet(admin_, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  std::string path = FreshTempDir("promtool") + "/metrics.txt";
  std::ofstream(path) << metrics.body;
  RunResult lint = RunCommand({"/bin/sh", "-c", std::string(kPromtool) + " check metrics < " + path});
  EXPECT_EQ(lint.status.code, 0) << lint.out << lint.err;
  EXPECT_EQ(lint.out + lint.err, "") << metrics.body;

  SignalFromSibling(current->pid(), SIGINT);
  EXPECT_EQ(current->Wait().code, 0);
}

}  // namespace
}  // namespace gateway::testing
