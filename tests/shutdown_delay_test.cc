// Black-box: the lame-duck period (--shutdown_delay). After a stop signal
// /readyz fails and STOPPING=1 is sent at once, but the listeners keep
// accepting for the delay before the drain starts, so a load balancer that
// learns of the stop late (Kubernetes endpoints) sends no connection into
// a closed port. The verdict is the one the signal gets without a delay; a
// second stop signal, SIGQUIT and a takeover do not wait; the record says
// what was served.
#include <signal.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

class ShutdownDelayTest : public ::testing::Test {
 protected:
  void StartGateway(const std::string& delay) {
    port_ = FreePort();
    Gateway::Options options;
    options.flags = {"--shutdown_delay=" + delay,
                     absl::StrCat("--route=127.0.0.1:", port_, "=127.0.0.1:", upstream_.port())};
    gw_ = std::make_unique<Gateway>(TestName(), options);
    ASSERT_TRUE(gw_->WaitReady()) << gw_->Log();
    admin_ = gw_->AdminAddress();
  }
  // A new connection through the gateway carries an echo.
  bool NewConnectionWorks() {
    int fd = ConnectTo(port_);
    if (fd < 0) return false;
    bool echoed = SendAll(fd, "ping") && RecvExactly(fd, 4) == "ping";
    close(fd);
    return echoed;
  }
  bool ReadyzFails() { return HttpGet(admin_, "/readyz").status == 503; }
  bool NotifiedStopping() {
    for (const std::string& n : gw_->Notifications()) {
      if (absl::StrContains(n, "STOPPING=1")) return true;
    }
    return false;
  }

  EchoServer upstream_;
  int port_ = 0;
  std::string admin_;
  std::unique_ptr<Gateway> gw_;
};

TEST_F(ShutdownDelayTest, ConnectionsOpenedDuringTheDelaySucceedAndTheVerdictIsUnchanged) {
  StartGateway("8s");
  absl::Time sent = absl::Now();
  SignalFromSibling(gw_->pid(), SIGINT);  // planned by interactive, with or without a delay
  ASSERT_TRUE(WaitFor([&] { return ReadyzFails(); }, absl::Seconds(5))) << gw_->Log();
  EXPECT_TRUE(WaitFor([&] { return NotifiedStopping(); }, absl::Seconds(5)));
  // The lame duck still serves new connections, more than once.
  EXPECT_TRUE(NewConnectionWorks()) << gw_->Log();
  EXPECT_TRUE(NewConnectionWorks()) << gw_->Log();
  EXPECT_TRUE(gw_->child().Running());
  ExitStatus status = gw_->Wait(absl::Seconds(40));
  absl::Duration stopped_after = absl::Now() - sent;
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << gw_->Log();
  EXPECT_GE(stopped_after, absl::Seconds(8)) << "left before the delay was served";
  EXPECT_FALSE(NewConnectionWorks());
  nlohmann::json record = gw_->Record();
  EXPECT_EQ(record["class"], "planned") << record.dump();
  EXPECT_EQ(record["detector"], "interactive");
  EXPECT_EQ(record["exit_code"], 0);
  ASSERT_TRUE(record["shutdown_delay"].is_object()) << record.dump();
  EXPECT_EQ(record["shutdown_delay"]["configured_ms"], 8000);
  EXPECT_GE(record["shutdown_delay"]["served_ms"].get<int64_t>(), 8000);
  EXPECT_TRUE(record["shutdown_delay"]["skipped"].is_null()) << record.dump();
}

TEST_F(ShutdownDelayTest, ListenersCloseWhenTheDelayEnds) {
  StartGateway("2s");
  SignalFromSibling(gw_->pid(), SIGINT);
  ASSERT_TRUE(WaitFor([&] { return ReadyzFails(); }, absl::Seconds(5))) << gw_->Log();
  // Hold a connection so the process stays in its drain after the delay:
  // the listener must be closed then, not only at exit.
  int held = ConnectTo(port_);
  ASSERT_GE(held, 0);
  ASSERT_TRUE(SendAll(held, "held") && RecvExactly(held, 4) == "held");
  EXPECT_TRUE(WaitFor(
      [&] {
        int fd = ConnectTo(port_, false, absl::Seconds(1));
        if (fd >= 0) close(fd);
        return fd < 0;
      },
      absl::Seconds(20)))
      << "still accepting after the delay";
  EXPECT_TRUE(gw_->child().Running()) << "the drain did not wait for the held connection";
  close(held);
  ExitStatus status = gw_->Wait(absl::Seconds(40));
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  nlohmann::json record = gw_->Record();
  // The held one (a probe of the loop above may still be closing).
  EXPECT_GE(record["drain"]["connections_at_signal"].get<int>(), 1) << record.dump();
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 0);
}

TEST_F(ShutdownDelayTest, SecondStopSignalSkipsTheRestOfTheDelay) {
  StartGateway("60s");
  SignalFromSibling(gw_->pid(), SIGINT);
  ASSERT_TRUE(WaitFor([&] { return ReadyzFails(); }, absl::Seconds(5))) << gw_->Log();
  SignalFromSibling(gw_->pid(), SIGTERM);
  ExitStatus status = gw_->Wait(absl::Seconds(30));
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe() << gw_->Log();
  nlohmann::json record = gw_->Record();
  EXPECT_EQ(record["class"], "planned") << "the second signal changed the verdict";
  EXPECT_EQ(record["shutdown_delay"]["configured_ms"], 60000) << record.dump();
  EXPECT_LT(record["shutdown_delay"]["served_ms"].get<int64_t>(), 30000);
  EXPECT_EQ(record["shutdown_delay"]["skipped"], "second stop signal (SIGTERM)");
}

TEST_F(ShutdownDelayTest, SigquitStopsWithoutTheDelay) {
  StartGateway("60s");
  SignalFromSibling(gw_->pid(), SIGQUIT);
  ExitStatus status = gw_->Wait(absl::Seconds(30));
  EXPECT_TRUE(status.exited) << status.Describe() << gw_->Log();
  nlohmann::json record = gw_->Record();
  EXPECT_EQ(record["signal"], "SIGQUIT") << record.dump();
  EXPECT_EQ(record["shutdown_delay"]["served_ms"], 0) << record.dump();
  EXPECT_EQ(record["shutdown_delay"]["skipped"], "SIGQUIT");
}

TEST_F(ShutdownDelayTest, TakeoverDoesNotWait) {
  StartGateway("60s");
  pid_t old_pid = gw_->pid();
  RunResult replaced = Gatewayctl({"replace", "--json", "--state_dir=" + gw_->state_dir()});
  ASSERT_EQ(replaced.status.code, 0) << replaced.err << gw_->Log();
  ExitStatus status = gw_->Wait(absl::Seconds(30));
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  nlohmann::json record = gw_->Record();
  EXPECT_EQ(record["pid"], old_pid) << record.dump();
  EXPECT_EQ(record["class"], "takeover");
  EXPECT_EQ(record["shutdown_delay"]["served_ms"], 0) << record.dump();
  EXPECT_TRUE(absl::StartsWith(record["shutdown_delay"].value("skipped", ""), "takeover"))
      << record.dump();
  EXPECT_TRUE(NewConnectionWorks()) << "the successor does not serve";
  // The successor has the same 60 s delay; SIGQUIT stops it without one.
  nlohmann::json instance =
      nlohmann::json::parse(ReadText(gw_->state_dir() + "/instance.json"), nullptr, false);
  ASSERT_TRUE(instance.is_object() && instance["pid"] != old_pid) << instance.dump();
  pid_t successor = instance["pid"].get<pid_t>();
  SignalFromSibling(successor, SIGQUIT);
  EXPECT_TRUE(WaitFor([&] { return GatewayProcessesFor(gw_->state_dir()).empty(); },
                      absl::Seconds(30)))
      << "successor pid " << successor << " still running";
}

}  // namespace
}  // namespace gateway::testing
