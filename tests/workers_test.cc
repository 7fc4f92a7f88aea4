// Black-box: several event loops (--workers, gateway/dataplane/workers.h).
// Connections spread over every worker, a drain waits for the connections
// of all of them, the stop record's counts are the sums over workers, and
// the default is the number of CPUs the process may use.
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

std::string RouteFlag(int listen_port, int upstream_port) {
  return absl::StrCat("--route=127.0.0.1:", listen_port, "=127.0.0.1:", upstream_port);
}

nlohmann::json Status(Gateway& gw) {
  return nlohmann::json::parse(HttpGet(gw.AdminAddress(), "/status").body, nullptr, false);
}

// Opens `count` relayed connections from `threads` client threads at once
// (a burst, as a load balancer's would be) and checks each echoes.
std::vector<int> OpenBurst(int port, int count, int threads) {
  std::vector<std::vector<int>> per_thread(static_cast<size_t>(threads));
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      for (int i = t; i < count; i += threads) {
        int fd = ConnectTo(port);
        if (fd < 0) continue;
        std::string hello = absl::StrCat("hello ", i);
        if (SendAll(fd, hello) && RecvExactly(fd, hello.size()) == hello) {
          per_thread[static_cast<size_t>(t)].push_back(fd);
        } else {
          close(fd);
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  std::vector<int> fds;
  for (const auto& some : per_thread) fds.insert(fds.end(), some.begin(), some.end());
  return fds;
}

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) {
    shutdown(fd, SHUT_WR);
    RecvUntilEof(fd);
    close(fd);
  }
  fds.clear();
}

TEST(WorkersTest, ConnectionsSpreadOverEveryWorker) {
  EchoServer upstream;
  int port = FreePort();
  Gateway gw(TestName(), {{RouteFlag(port, upstream.port()), "--workers=4"}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  EXPECT_TRUE(absl::StrContains(gw.Log(), "; workers 4")) << gw.Log();
  std::vector<int> held = OpenBurst(port, 400, 16);
  ASSERT_EQ(held.size(), 400u);
  nlohmann::json status = Status(gw);
  ASSERT_TRUE(status["workers"].is_array()) << status.dump();
  ASSERT_EQ(status["workers"].size(), 4u) << status.dump();
  int64_t sum = 0;
  std::string spread;
  for (const nlohmann::json& worker : status["workers"]) {
    int64_t active = worker["connections_active"].get<int64_t>();
    EXPECT_GT(active, 0) << "worker " << worker["worker"] << " took no connection: "
                         << status["workers"].dump();
    sum += active;
    absl::StrAppend(&spread, spread.empty() ? "" : " / ", active);
  }
  EXPECT_EQ(sum, 400);
  EXPECT_EQ(status["connections_active"], 400);
  std::printf("400 connections in a burst over 4 workers: %s\n", spread.c_str());
  std::string metrics = HttpGet(gw.AdminAddress(), "/metrics").body;
  EXPECT_TRUE(absl::StrContains(metrics, "gateway_worker_connections_active{worker=\"3\"}"))
      << metrics;
  CloseAll(held);
  gw.child().Signal(SIGINT);
  ExitStatus exit = gw.Wait();
  EXPECT_TRUE(exit.exited && exit.code == 0) << exit.Describe();
}

// The drain waits for the connections of every worker; the record counts
// them all.
TEST(WorkersTest, DrainWaitsForEveryWorkersConnections) {
  EchoServer upstream;
  int port = FreePort();
  Gateway gw(TestName(),
             {{RouteFlag(port, upstream.port()), "--workers=4", "--drain_timeout=30s"}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  std::vector<int> held = OpenBurst(port, 80, 8);
  ASSERT_EQ(held.size(), 80u);
  gw.child().Signal(SIGINT);  // planned (interactive)
  // The drain starts once every worker has closed its listening
  // descriptor (/readyz fails a moment earlier, when the stop is latched).
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(gw.Log(), "draining 80 connection(s)"); },
                      absl::Seconds(10)))
      << gw.Log();
  EXPECT_EQ(HttpGet(gw.AdminAddress(), "/readyz").status, 503);
  int late = ConnectTo(port, false, absl::Seconds(1));
  EXPECT_LT(late, 0) << "a worker still accepts";
  if (late >= 0) close(late);
  // Every held connection, whichever worker has it, still relays.
  for (int fd : held) {
    ASSERT_TRUE(SendAll(fd, "draining") && RecvExactly(fd, 8) == "draining");
  }
  EXPECT_TRUE(gw.child().Running());
  CloseAll(held);
  ExitStatus exit = gw.Wait(absl::Seconds(20));
  EXPECT_TRUE(exit.exited && exit.code == 0) << exit.Describe();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "planned");
  EXPECT_EQ(record["drain"]["connections_at_signal"], 80) << record.dump();
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 0) << record.dump();
}

// A stop while every worker relays: the verdict is the signal's, and the
// connections cut at the deadline are the sum over workers.
TEST(WorkersTest, StopWhileAllWorkersRelayRecordsTheSums) {
  EchoServer upstream;
  int port = FreePort();
  Gateway gw(TestName(),
             {{RouteFlag(port, upstream.port()), "--workers=4", "--drain_timeout=1s"}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  std::vector<int> held = OpenBurst(port, 200, 16);
  ASSERT_EQ(held.size(), 200u);
  nlohmann::json status = Status(gw);
  for (const nlohmann::json& worker : status["workers"]) {
    ASSERT_GT(worker["connections_active"].get<int64_t>(), 0) << status["workers"].dump();
  }
  // Traffic on every connection while the stop comes.
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    while (!stop.load()) {
      for (int fd : held) (void)!send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  SignalFromSibling(gw.pid(), SIGTERM);  // a stray kill: unexpected
  ExitStatus exit = gw.Wait(absl::Seconds(20));
  stop.store(true);
  traffic.join();
  ASSERT_TRUE(exit.exited && exit.code == 1) << exit.Describe() << "\n" << gw.Log();
  nlohmann::json record = gw.Record();
  EXPECT_EQ(record["class"], "unexpected") << record.dump();
  EXPECT_EQ(record["drain"]["connections_at_signal"], 200) << record.dump();
  EXPECT_EQ(record["drain"]["closed_at_deadline"], 200) << record.dump();
  for (int fd : held) close(fd);
}

TEST(WorkersTest, DefaultIsTheCpusThisProcessMayUse) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  int cpus = CPU_COUNT(&set);
  std::string cpu_max = ReadText("/sys/fs/cgroup/cpu.max");
  if (!cpu_max.empty() && !absl::StartsWith(cpu_max, "max")) {
    GTEST_SKIP() << "this test's cgroup has a cpu.max quota (" << cpu_max
                 << "); gateway/base/resources_test.cc covers quotas";
  }
  const std::vector<int> ports = FreePorts(2);
  Gateway gw(TestName(), {{RouteFlag(ports[0], ports[1])}});
  ASSERT_TRUE(gw.WaitReady()) << gw.Log();
  EXPECT_TRUE(absl::StrContains(gw.Log(), absl::StrCat("; workers ", cpus))) << gw.Log();
  EXPECT_EQ(Status(gw)["workers"].size(), static_cast<size_t>(cpus));
  gw.child().Signal(SIGINT);
  EXPECT_TRUE(gw.Wait().exited);
}

TEST(WorkersTest, OutOfRangeWorkersIsAConfigurationError) {
  Gateway gw(TestName(), {{"--workers=-1"}});
  ExitStatus exit = gw.Wait();
  EXPECT_TRUE(exit.exited && exit.code == 78) << exit.Describe();
  EXPECT_TRUE(absl::StrContains(gw.Log(), "gateway: error: --workers=-1 is out of range"))
      << gw.Log();
}

}  // namespace
}  // namespace gateway::testing
