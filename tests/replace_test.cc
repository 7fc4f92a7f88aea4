// Black-box: zero-downtime replacement with the real gateway and gatewayctl.
// Load runs through the gateway while it is replaced; no connection may
// fail, and every old process must record `takeover` and exit 0.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

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

// Closed-loop load: `workers` threads each connect, send, read the echo and
// close, until stopped. Bounded by `max_duration`.
class Load {
 public:
  Load(int port, int workers, absl::Duration max_duration = absl::Seconds(60)) {
    absl::Time end = absl::Now() + max_duration;
    for (int w = 0; w < workers; ++w) {
      threads_.emplace_back([this, port, w, end] {
        for (int i = 0; !stop_.load() && absl::Now() < end; ++i) {
          std::string message = absl::StrCat("w", w, "-", i);
          int fd = ConnectTo(port, false, absl::Seconds(5));
          bool ok = fd >= 0 && SendAll(fd, message) && RecvExactly(fd, message.size()) == message;
          if (fd >= 0) close(fd);
          (ok ? ok_ : failed_).fetch_add(1);
        }
      });
    }
  }
  ~Load() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int ok() const { return ok_.load(); }
  int failed() const { return failed_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0};
  std::atomic<int> failed_{0};
  std::vector<std::thread> threads_;
};

nlohmann::json InstanceJson(const std::string& state_dir) {
  return nlohmann::json::parse(ReadText(state_dir + "/instance.json"), nullptr, false);
}

class ReplaceTest : public ::testing::Test {
 protected:
  void StartGateway(std::vector<std::string> flags = {}) {
    port_ = FreePort();
    Gateway::Options options;
    options.flags = std::move(flags);
    options.flags.push_back(absl::StrCat("--route=127.0.0.1:", port_, "=127.0.0.1:", upstream_.port()));
    gw_ = std::make_unique<Gateway>(TestName(), options);
    ASSERT_TRUE(gw_->WaitReady()) << gw_->Log();
  }
  // A connection through the gateway that has carried one echo; -1 if none.
  int OpenWorkingConnection() {
    int fd = ConnectTo(port_);
    if (fd >= 0 && SendAll(fd, "one") && RecvExactly(fd, 3) == "one") return fd;
    if (fd >= 0) close(fd);
    return -1;
  }
  // Until the old process has classified its stop as takeover.
  bool WaitForTakeover() {
    return WaitFor(
        [&] { return gw_->Log().find("stop classified as takeover") != std::string::npos; },
        absl::Seconds(10));
  }
  RunResult Replace(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replace", "--json", "--state_dir=" + gw_->state_dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Gatewayctl(args);
  }

  EchoServer upstream_;
  int port_ = 0;
  std::unique_ptr<Gateway> gw_;
};

TEST_F(ReplaceTest, ReplacementsUnderLoadLoseNoConnection) {
  StartGateway();
  Load load(port_, 8);
  ASSERT_TRUE(WaitFor([&] { return load.ok() > 50; }, absl::Seconds(10)));
  pid_t old_pid = gw_->pid();
  for (int round = 0; round < 3; ++round) {
    RunResult replaced = Replace();
    ASSERT_EQ(replaced.status.code, 0) << replaced.err << replaced.out << gw_->Log();
    nlohmann::json result = nlohmann::json::parse(replaced.out, nullptr, false);
    ASSERT_TRUE(result.is_object()) << replaced.out;
    EXPECT_EQ(result["old_pid"], old_pid);
    EXPECT_EQ(result["record"]["class"], "takeover");
    EXPECT_EQ(result["record"]["detector"], "takeover_marker");
    EXPECT_EQ(result["record"]["exit_code"], 0);
    pid_t new_pid = result["new_pid"].get<pid_t>();
    EXPECT_NE(new_pid, old_pid);
    EXPECT_EQ(InstanceJson(gw_->state_dir())["pid"], new_pid);
    EXPECT_EQ(gw_->Record()["pid"], old_pid);
    if (round == 0) {
      ExitStatus first = gw_->Wait();  // the first old process is our child
      EXPECT_TRUE(first.exited && first.code == 0) << first.Describe();
    }
    old_pid = new_pid;
    int before = load.ok();
    ASSERT_TRUE(WaitFor([&] { return load.ok() > before + 20; }, absl::Seconds(10)))
        << "no traffic after replacement " << round;
  }
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << "connections failed during replacements (ok " << load.ok() << ")";
  // The last successor is not our child: stop it by pid through gatewayctl.
  RunResult stopped = Gatewayctl({"stop", "--state_dir=" + gw_->state_dir()});
  EXPECT_EQ(stopped.status.code, 0) << stopped.err;
}

// A successor may run another number of workers: every worker shares the
// one listening socket per address, and that socket is handed over whole,
// so no connection queued on it is lost whatever the two counts are.
TEST_F(ReplaceTest, SuccessorsWithOtherWorkerCountsLoseNoConnection) {
  StartGateway({"--workers=2"});
  const std::string admin = gw_->AdminAddress();
  const std::string dir = FreshTempDir("replace-workers");
  Load load(port_, 8);
  ASSERT_TRUE(WaitFor([&] { return load.ok() > 50; }, absl::Seconds(10)));
  for (int workers : {4, 1, 3}) {
    // The successor gets the running gateway's argv; the wrapper's
    // --workers comes last and wins.
    std::string wrapper = absl::StrCat(dir, "/gateway-workers", workers);
    {
      std::ofstream script(wrapper);
      script << "#!/bin/sh\nexec " << Runfile("gateway/gateway") << " \"$@\" --workers=" << workers
             << "\n";
    }
    chmod(wrapper.c_str(), 0755);
    RunResult replaced = Replace({"--binary=" + wrapper});
    ASSERT_EQ(replaced.status.code, 0) << replaced.err << replaced.out << gw_->Log();
    nlohmann::json result = nlohmann::json::parse(replaced.out, nullptr, false);
    ASSERT_TRUE(result.is_object()) << replaced.out;
    EXPECT_EQ(result["record"]["class"], "takeover");
    nlohmann::json status = nlohmann::json::parse(HttpGet(admin, "/status").body, nullptr, false);
    ASSERT_TRUE(status.is_object());
    EXPECT_EQ(status["pid"], result["new_pid"]);
    EXPECT_EQ(status["workers"].size(), static_cast<size_t>(workers)) << status["workers"].dump();
    int before = load.ok();
    ASSERT_TRUE(WaitFor([&] { return load.ok() > before + 20; }, absl::Seconds(10)))
        << "no traffic after the replacement by " << workers << " workers";
  }
  load.Stop();
  EXPECT_EQ(load.failed(), 0) << "connections failed during replacements (ok " << load.ok() << ")";
  RunResult stopped = Gatewayctl({"stop", "--state_dir=" + gw_->state_dir()});
  EXPECT_EQ(stopped.status.code, 0) << stopped.err;
}

TEST_F(ReplaceTest, OpenConnectionIsDrainedByTheOldProcess) {
  StartGateway();
  int fd = OpenWorkingConnection();
  ASSERT_GE(fd, 0);
  pid_t old_pid = gw_->pid();
  std::thread replace([&] { EXPECT_EQ(Replace().status.code, 0); });
  // The old process drains: the connection still works after the hand-over.
  ASSERT_TRUE(WaitForTakeover()) << gw_->Log();
  EXPECT_NE(InstanceJson(gw_->state_dir())["pid"], old_pid);
  ASSERT_TRUE(SendAll(fd, "two"));
  EXPECT_EQ(RecvExactly(fd, 3), "two");
  EXPECT_TRUE(gw_->child().Running()) << "old process left before its connection finished";
  close(fd);
  replace.join();
  ExitStatus status = gw_->Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  nlohmann::json record = gw_->Record();
  EXPECT_EQ(record["class"], "takeover");
  EXPECT_EQ(record["drain"]["connections_at_signal"], 1);
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 0);
  Gatewayctl({"stop", "--state_dir=" + gw_->state_dir()});
}

TEST_F(ReplaceTest, SuccessorStoppedWhileItsPredecessorDrainsKeepsTheLastRecord) {
  // The old process holds a connection, so it is still draining (takeover)
  // when the operator stops the service, i.e. the successor. The successor
  // stops and records first; the old one records when its connection ends.
  // last-shutdown.json must stay the successor's (the newest instance);
  // the old one's takeover goes to the history.
  StartGateway();
  int fd = OpenWorkingConnection();
  ASSERT_GE(fd, 0);
  pid_t old_pid = gw_->pid();
  RunResult replaced;
  std::thread replace([&] { replaced = Replace(); });
  ASSERT_TRUE(WaitForTakeover()) << gw_->Log();
  int successor = InstanceJson(gw_->state_dir()).value("pid", 0);
  ASSERT_NE(successor, old_pid);

  RunResult stop = Gatewayctl({"stop", "--json", "--state_dir=" + gw_->state_dir()});
  EXPECT_EQ(stop.status.code, 0) << stop.err;
  EXPECT_TRUE(gw_->child().Running()) << "the old process left before its connection ended";
  nlohmann::json stopped = nlohmann::json::parse(stop.out, nullptr, false);
  EXPECT_EQ(stopped["pid"], successor) << stop.out;
  EXPECT_EQ(stopped["class"], "planned") << stop.out;

  close(fd);
  replace.join();
  EXPECT_EQ(replaced.status.code, 0) << replaced.err;
  ExitStatus status = gw_->Wait();
  EXPECT_TRUE(status.exited && status.code == 0) << status.Describe();
  nlohmann::json last = gw_->Record();
  EXPECT_EQ(last["pid"], successor) << last.dump();
  EXPECT_EQ(last["class"], "planned");
  EXPECT_NE(gw_->Log().find("already holds the stop of pid " + std::to_string(successor)),
            std::string::npos)
      << gw_->Log();
  // Both stops are in the history, the successor's first.
  std::ifstream history(gw_->state_dir() + "/stop-history.jsonl");
  std::vector<std::pair<int, std::string>> stops;
  for (std::string line; std::getline(history, line);) {
    nlohmann::json entry = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(entry.is_object()) << line;
    stops.emplace_back(entry.value("pid", 0), entry.value("class", ""));
  }
  std::vector<std::pair<int, std::string>> expected = {{successor, "planned"},
                                                       {old_pid, "takeover"}};
  EXPECT_EQ(stops, expected);
  EXPECT_TRUE(GatewayProcessesFor(gw_->state_dir()).empty());
}

TEST_F(ReplaceTest, BinaryWhoseCheckFailsIsRefusedBeforeItStarts) {
  StartGateway();
  // The replacement runs the binary with --check first; /bin/false fails it.
  RunResult replaced = Replace({"--binary=/bin/false"});
  EXPECT_EQ(replaced.status.code, 1);
  EXPECT_NE(replaced.err.find("replace refused: the new configuration does not check: "),
            std::string::npos)
      << replaced.err;
  EXPECT_NE(replaced.err.find("--check` exited with status 1"), std::string::npos) << replaced.err;
  EXPECT_TRUE(gw_->child().Running());
  EXPECT_EQ(InstanceJson(gw_->state_dir())["pid"], gw_->pid());
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "alive"));
  EXPECT_EQ(RecvExactly(fd, 5), "alive");
  close(fd);
}

TEST_F(ReplaceTest, SuccessorThatCannotStartLeavesTheOldOneServing) {
  StartGateway();
  // Passes the check (the real gateway's), then fails as the successor.
  std::string wrapper = FreshTempDir("replace-false") + "/gateway-false";
  {
    std::ofstream script(wrapper);
    script << "#!/bin/sh\ncase \" $* \" in *\" --check \"*) exec " << Runfile("gateway/gateway")
           << " \"$@\";; esac\nexit 1\n";
  }
  chmod(wrapper.c_str(), 0755);
  RunResult replaced = Replace({"--binary=" + wrapper});
  EXPECT_EQ(replaced.status.code, 1);
  EXPECT_NE(replaced.err.find("replace failed: successor pid"), std::string::npos) << replaced.err;
  EXPECT_NE(replaced.err.find("exited with status 1 before it was ready"), std::string::npos)
      << replaced.err;
  EXPECT_TRUE(gw_->child().Running());
  EXPECT_EQ(InstanceJson(gw_->state_dir())["pid"], gw_->pid());
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "alive"));
  EXPECT_EQ(RecvExactly(fd, 5), "alive");
  close(fd);
  // And it still stops as itself, cleanly.
  SignalFromSibling(gw_->pid(), SIGINT);
  EXPECT_EQ(gw_->Wait().code, 0);
  EXPECT_EQ(gw_->Record()["pid"], gw_->pid());
  EXPECT_EQ(gw_->Record()["previous_exit"], "none");
}

TEST_F(ReplaceTest, SuccessorFailingAfterTheHandOverReportsWhy) {
  StartGateway();
  // A wrapper that starts the real gateway with one more route whose
  // address is busy: it fails after receiving the sockets.
  std::string dir = FreshTempDir("replace-wrapper");
  std::string wrapper = dir + "/gateway-busy";
  {
    std::ofstream script(wrapper);
    script << "#!/bin/sh\nexec " << Runfile("gateway/gateway") << " \"$@\" --route=127.0.0.1:"
           << upstream_.port() << "=127.0.0.1:1\n";
  }
  chmod(wrapper.c_str(), 0755);
  RunResult replaced = Replace({"--binary=" + wrapper});
  EXPECT_EQ(replaced.status.code, 1);
  EXPECT_NE(replaced.err.find("failed before it was ready"), std::string::npos) << replaced.err;
  EXPECT_NE(replaced.err.find("address already in use"), std::string::npos) << replaced.err;
  EXPECT_TRUE(gw_->child().Running());
  int fd = ConnectTo(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "alive"));
  EXPECT_EQ(RecvExactly(fd, 5), "alive");
  close(fd);
  // A later replacement still works.
  RunResult again = Replace();
  EXPECT_EQ(again.status.code, 0) << again.err;
  EXPECT_EQ(gw_->Wait().code, 0);
  Gatewayctl({"stop", "--state_dir=" + gw_->state_dir()});
}

TEST_F(ReplaceTest, RefusedUnderAOnePidSupervisor) {
  // A parent process named runsv (a script's comm is its file name).
  std::string dir = FreshTempDir("fake-runsv");
  std::string runsv = dir + "/runsv";
  {
    std::ofstream script(runsv);
    script << "#!/bin/sh\n\"$@\" &\nwait\n";
  }
  chmod(runsv.c_str(), 0755);
  std::string state_dir = dir + "/state";
  Child::Options options;
  options.argv = {runsv, Runfile("gateway/gateway"), "--state_dir=" + state_dir,
                  "--admin=127.0.0.1:0"};
  options.env = BaseEnvironment();
  Child supervised(options);
  ASSERT_TRUE(WaitFor([&] { return Exists(state_dir + "/control.sock"); }, absl::Seconds(10)));
  RunResult replaced = Gatewayctl({"replace", "--state_dir=" + state_dir});
  EXPECT_EQ(replaced.status.code, 1);
  EXPECT_NE(replaced.err.find("replace refused: this gateway runs under runsv"), std::string::npos)
      << replaced.err;
  EXPECT_NE(replaced.err.find("sv restart"), std::string::npos) << replaced.err;
  EXPECT_EQ(Gatewayctl({"stop", "--state_dir=" + state_dir}).status.code, 0);
  supervised.Wait();
}

}  // namespace
}  // namespace gateway::testing
