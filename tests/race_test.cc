// Black-box races around a stop (issue 8): a marker that arrives after the
// verdict, a marker for an earlier process with the same pid, stop and
// replace at once, a storm of signals from several senders, a SIGTERM in
// the middle of a hand-over and during start-up. Each is deterministic or
// randomised within a fixed number of rounds; every round ends with the
// same consistency checks: one verdict, a record that parses and agrees
// with the exit status, and no gateway left running that is not the
// instance recorded in instance.json.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>

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

int CountOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadText(path), nullptr, false);
}

// One verdict was logged, and the record agrees with how the process ended.
void ExpectOneConsistentVerdict(Gateway& gw, const ExitStatus& exit) {
  ASSERT_TRUE(exit.exited) << exit.Describe() << gw.Log();
  EXPECT_EQ(CountOf(gw.Log(), "stop classified as"), 1) << gw.Log();
  nlohmann::json record = gw.Record();
  ASSERT_TRUE(record.is_object()) << "last-shutdown.json does not parse";
  EXPECT_EQ(record["pid"], gw.pid());
  EXPECT_EQ(record["exit_code"], exit.code);
}

// After a race: at most one gateway runs for the state directory, and it
// is the one instance.json names. Stops it (planned) so nothing outlives
// the test.
void ExpectOnlyTheRecordedInstanceRuns(const std::string& state_dir) {
  // A successor abandoned by its predecessor is killed and reaped by it;
  // give that a moment.
  std::vector<pid_t> alive;
  WaitFor([&] { alive = GatewayProcessesFor(state_dir); return alive.size() <= 1; },
          absl::Seconds(10));
  ASSERT_LE(alive.size(), 1u) << "more than one gateway runs for " << state_dir;
  if (alive.empty()) return;
  EXPECT_EQ(ReadJson(state_dir + "/instance.json")["pid"], alive[0])
      << "a gateway runs that is not the recorded instance";
  RunResult stopped = Gatewayctl({"stop", "--timeout=10s", "--state_dir=" + state_dir});
  EXPECT_EQ(stopped.status.code, 0) << stopped.err;
}

TEST(RaceTest, MarkerWrittenAfterTheVerdictDoesNotChangeIt) {
  EchoServer upstream;
  int port = FreePort();
  Gateway gw(TestName(), {{absl::StrCat("--route=127.0.0.1:", port, "=127.0.0.1:", upstream.port()),
                           "--drain_timeout=20s"}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  int open_connection = ConnectTo(port);  // keeps the gateway draining
  ASSERT_GE(open_connection, 0);
  ASSERT_TRUE(WaitFor([&] { return upstream.accepted() == 1; }, absl::Seconds(5)));
  SignalFromSibling(gw.pid(), SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw.Log(), "stop classified as"); },
                      absl::Seconds(10)));
  // Now a valid planned-stop marker for this very process appears, and a
  // second SIGTERM arrives: the verdict stays, the marker is not consumed.
  RunResult mark = Gatewayctl({"mark-planned", "--state_dir=" + gw.state_dir()});
  ASSERT_EQ(mark.status.code, 0) << mark.err;
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus exit = gw.Wait();
  close(open_connection);
  ExpectOneConsistentVerdict(gw, exit);
  EXPECT_EQ(exit.code, 1);
  EXPECT_EQ(gw.Record()["class"], "unexpected");
  EXPECT_EQ(gw.Record()["signals_received"], 2);
  EXPECT_TRUE(Exists(gw.state_dir() + "/planned-stop.json"))
      << "a marker that decided nothing was consumed";
}

TEST(RaceTest, MarkerRacingTheSignalEitherDecidesOrStaysUnused) {
  // Randomised: the marker lands just before or just after the signal is
  // read. Whichever happens, the record tells the truth about it.
  std::mt19937 random(20261203);
  for (int round = 0; round < 6; ++round) {
    Gateway gw(absl::StrCat(TestName(), round));
    ASSERT_TRUE(gw.WaitReady()) << gw.Log();
    RunResult mark;
    std::thread marker(
        [&] { mark = Gatewayctl({"mark-planned", "--state_dir=" + gw.state_dir()}); });
    absl::SleepFor(absl::Microseconds(random() % 150000));
    SignalFromSibling(gw.pid(), SIGTERM);
    marker.join();
    ExitStatus exit = gw.Wait();
    ExpectOneConsistentVerdict(gw, exit);
    bool planned = gw.Record()["class"] == "planned";
    EXPECT_EQ(exit.code, planned ? 0 : 1);
    // Consumed exactly when it decided the stop; a marker written after
    // the verdict (or refused because the gateway was gone) decided nothing.
    bool marker_on_disk = Exists(gw.state_dir() + "/planned-stop.json");
    EXPECT_EQ(marker_on_disk, !planned && mark.status.code == 0) << "round " << round;
    std::printf("round %d: %s, mark-planned exit %d\n", round, planned ? "planned" : "unexpected",
                mark.status.code);
  }
}

// Forks and execs the gateway under `pid` by steering the kernel's next pid
// (/proc/sys/kernel/ns_last_pid) right before fork(); other processes on
// the machine may take it first, so this retries a bounded number of
// times. The harness's Gateway forks helpers first, hence a plain fork.
pid_t SpawnWithPid(pid_t pid, const std::string& state_dir, const std::string& log) {
  std::vector<std::string> args = {Runfile("gateway/gateway"), "--state_dir=" + state_dir,
                                   "--admin="};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  for (int attempt = 0; attempt < 200; ++attempt) {
    FILE* last = std::fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (last == nullptr) return -1;
    std::fprintf(last, "%d", pid - 1);
    if (std::fclose(last) != 0) return -1;
    pid_t child = fork();
    if (child == 0) {
      if (getpid() != pid) ExitForkedChild(0);  // someone else took it: try again
      if (freopen(log.c_str(), "w", stderr) == nullptr) ExitForkedChild(70);
      char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
      execve(argv[0], argv.data(), envp);
      ExitForkedChild(127);
    }
    if (child == pid) return child;
    waitpid(child, nullptr, 0);
  }
  return -1;
}

TEST(RaceTest, MarkerForAnEarlierProcessWithTheSamePidIsIgnored) {
  std::string state_dir = FreshTempDir("reused-pid") + "/state";
  Gateway::Options options;
  options.state_dir = state_dir;
  auto first = std::make_unique<Gateway>(TestName(), options);
  ASSERT_TRUE(first->WaitReady()) << first->Log();
  pid_t pid = first->pid();
  RunResult mark = Gatewayctl({"mark-planned", "--state_dir=" + state_dir});
  ASSERT_EQ(mark.status.code, 0) << mark.err;
  first->child().Signal(SIGKILL);  // the marker is left behind, unconsumed
  first->Wait();
  first.reset();

  std::string log = state_dir + "/../second.log";
  pid_t second = SpawnWithPid(pid, state_dir, log);
  if (second < 0) GTEST_SKIP() << "could not get pid " << pid << " again (ns_last_pid)";
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(ReadText(log), "serving;"); },
                      absl::Seconds(10)))
      << ReadText(log);
  SignalFromSibling(second, SIGTERM);
  int raw = 0;
  ASSERT_EQ(waitpid(second, &raw, 0), second);
  EXPECT_TRUE(WIFEXITED(raw) && WEXITSTATUS(raw) == 1) << raw;
  nlohmann::json record = ReadJson(state_dir + "/last-shutdown.json");
  EXPECT_EQ(record["pid"], pid);
  EXPECT_EQ(record["class"], "unexpected");
  EXPECT_EQ(record["previous_exit"], "unclean");
  EXPECT_TRUE(absl::StrContains(ReadText(log), "an earlier process with a reused pid"))
      << ReadText(log);
}

TEST(RaceTest, StopAndReplaceAtTheSameTimeEndConsistently) {
  std::mt19937 random(8);
  EchoServer upstream;
  for (int round = 0; round < 4; ++round) {
    int port = FreePort();
    Gateway gw(absl::StrCat(TestName(), round),
               {{absl::StrCat("--route=127.0.0.1:", port, "=127.0.0.1:", upstream.port())}});
    ASSERT_TRUE(gw.WaitReady()) << gw.Log();
    const std::string dir = "--state_dir=" + gw.state_dir();
    int delay_ms = static_cast<int>(random() % 60);
    RunResult stop, replace;
    std::thread stopper([&] {
      absl::SleepFor(absl::Milliseconds(round % 2 == 0 ? delay_ms : 0));
      stop = Gatewayctl({"stop", "--json", "--timeout=20s", dir});
    });
    std::thread replacer([&] {
      absl::SleepFor(absl::Milliseconds(round % 2 == 1 ? delay_ms : 0));
      replace = Gatewayctl({"replace", "--json", dir});
    });
    stopper.join();
    replacer.join();
    ExitStatus exit = gw.Wait();
    EXPECT_TRUE(exit.exited && exit.code == 0)
        << "the old instance must stop as planned or takeover: " << exit.Describe();
    // The last record is the old one's, or the successor's when stop
    // found the successor already recorded in instance.json (then the old
    // one's takeover is only in the history, even if it drained longer).
    ASSERT_TRUE(gw.Record().is_object()) << "last-shutdown.json does not parse";
    // stop always ends the process it found (and a successor that a
    // winning replace started); replace either succeeded (the old one
    // retired as takeover) or failed with one line.
    EXPECT_EQ(stop.status.code, 0) << stop.err;
    if (replace.status.code != 0) {  // one line saying why
      EXPECT_EQ(CountOf(replace.err, "\n"), 1) << replace.err << replace.out;
    }
    std::printf("round %d (delay %d ms): last record pid %s (old %d) %s; stop=%d (%s) replace=%d "
                "(%s) running=%zu\n", round, delay_ms, gw.Record()["pid"].dump().c_str(), gw.pid(),
                gw.Record()["class"].dump().c_str(), stop.status.code,
                stop.err.substr(0, stop.err.find('\n')).c_str(),
                replace.status.code, replace.err.substr(0, replace.err.find('\n')).c_str(),
                GatewayProcessesFor(gw.state_dir()).size());
    ExpectOnlyTheRecordedInstanceRuns(gw.state_dir());
  }
}

TEST(RaceTest, SignalStormFromSeveralSendersYieldsOneVerdict) {
  Gateway gw(TestName());
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  constexpr int kSenders = 4;
  constexpr int kSignalsPerSender = 250;
  const int kinds[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  std::vector<pid_t> senders;
  absl::Time start = absl::Now();
  for (int s = 0; s < kSenders; ++s) {
    pid_t sender = fork();
    if (sender == 0) {
      for (int i = 0; i < kSignalsPerSender; ++i) kill(gw.pid(), kinds[(i + s) % 4]);
      ExitForkedChild(0);
    }
    senders.push_back(sender);
  }
  for (pid_t sender : senders) waitpid(sender, nullptr, 0);
  ExitStatus exit = gw.Wait(absl::Seconds(15));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  ExpectOneConsistentVerdict(gw, exit);
  nlohmann::json record = gw.Record();
  EXPECT_GE(record["signals_received"].get<int>(), 1);
  EXPECT_TRUE(record["class"] == "planned" || record["class"] == "unexpected") << record;
  EXPECT_FALSE(Exists(gw.state_dir() + "/running"));
}

TEST(RaceTest, SigtermDuringTheHandOverEndsConsistently) {
  // The lead's design: when the old instance's own stop is latched before
  // its successor is ready, the successor is abandoned (killed, reaped);
  // once the successor is ready, it is the recorded instance and runs on.
  std::mt19937 random(42);
  EchoServer upstream;
  for (int round = 0; round < 6; ++round) {
    int port = FreePort();
    Gateway gw(absl::StrCat(TestName(), round),
               {{absl::StrCat("--route=127.0.0.1:", port, "=127.0.0.1:", upstream.port())}});
    ASSERT_TRUE(gw.WaitReady()) << gw.Log();
    int delay_ms = static_cast<int>(random() % 1200);
    RunResult replace;
    std::thread replacer(
        [&] { replace = Gatewayctl({"replace", "--json", "--state_dir=" + gw.state_dir()}); });
    absl::SleepFor(absl::Milliseconds(delay_ms));
    SignalFromSibling(gw.pid(), SIGTERM);
    replacer.join();
    ExitStatus exit = gw.Wait();
    nlohmann::json record = gw.Record();
    ASSERT_TRUE(record.is_object()) << "last-shutdown.json does not parse";
    EXPECT_EQ(record["pid"], gw.pid());
    EXPECT_EQ(record["exit_code"], exit.code);
    std::string old_class = record["class"];
    EXPECT_TRUE(old_class == "takeover" || old_class == "unexpected") << old_class;
    EXPECT_EQ(exit.code, old_class == "takeover" ? 0 : 1);
    std::vector<pid_t> alive = GatewayProcessesFor(gw.state_dir());
    std::printf("round %d (SIGTERM after %d ms): old=%s replace=%d running=%zu\n", round, delay_ms,
                old_class.c_str(), replace.status.code, alive.size());
    if (old_class == "takeover") {
      EXPECT_EQ(replace.status.code, 0) << replace.err;
      EXPECT_EQ(alive.size(), 1u);
    }
    ExpectOnlyTheRecordedInstanceRuns(gw.state_dir());
  }
}

TEST(RaceTest, SigtermDuringStartupIsClassifiedAndLeavesNothingBehind) {
  // Deterministic: the signal arrives in the starting phase (listeners are
  // bound, READY=1 not sent yet).
  {
    Gateway gw(TestName(), {{"--startup_delay_for_test=5s"}});
    ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw.Log(), "starting; state directory"); },
                        absl::Seconds(10)))
        << gw.Log();
    SignalFromSibling(gw.pid(), SIGTERM);
    ExitStatus exit = gw.Wait(absl::Seconds(4));
    ExpectOneConsistentVerdict(gw, exit);
    EXPECT_EQ(exit.code, 1);
    EXPECT_EQ(gw.Record()["phase"], "starting");
    EXPECT_FALSE(gw.WaitReady(absl::Milliseconds(1)));
  }
  // Randomised: the signal lands anywhere in the first milliseconds of
  // start-up, down to before main() has blocked the stop signals.
  std::mt19937 random(75);
  int killed_before_main = 0, starting = 0, serving = 0;
  for (int round = 0; round < 20; ++round) {
    int port = FreePort();
    Gateway gw(absl::StrCat(TestName(), round),
               {{absl::StrCat("--route=127.0.0.1:", port, "=127.0.0.1:9")}});
    absl::SleepFor(absl::Microseconds(random() % 300000));
    kill(gw.pid(), SIGTERM);  // from the parent: unexpected either way
    ExitStatus exit = gw.Wait();
    if (!exit.exited) {
      // Before BlockHandledSignals(): the default action, like any process.
      EXPECT_EQ(exit.signal, SIGTERM) << exit.Describe();
      EXPECT_FALSE(Exists(gw.state_dir() + "/running"));
      ++killed_before_main;
      continue;
    }
    ExpectOneConsistentVerdict(gw, exit);
    EXPECT_EQ(exit.code, 1);
    (gw.Record()["phase"] == "starting" ? starting : serving)++;
    EXPECT_FALSE(Exists(gw.state_dir() + "/running"));
    int again = ConnectTo(port, false, absl::Seconds(1));
    EXPECT_LT(again, 0) << "the listener outlived the process";
    if (again >= 0) close(again);
  }
  std::printf("SIGTERM during start-up: %d before main blocked signals, %d starting, %d serving\n",
              killed_before_main, starting, serving);
}

}  // namespace
}  // namespace gateway::testing
