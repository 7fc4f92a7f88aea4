// Unit tests of the systemd watchdog: when it pings, how often, and that it
// really sends WATCHDOG=1 on the notify socket.
#include "gateway/supervision/watchdog.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(WatchdogPingIntervalTest, IsHalfOfWatchdogUsec) {
  Environment env = {{"WATCHDOG_USEC", "3000000"}};
  EXPECT_EQ(WatchdogPingInterval(env, 42), absl::Milliseconds(1500));
}

TEST(WatchdogPingIntervalTest, OffWithoutWatchdogUsec) {
  EXPECT_EQ(WatchdogPingInterval({}, 42), std::nullopt);
}

TEST(WatchdogPingIntervalTest, OffWhenWatchdogPidNamesAnotherProcess) {
  // A child of the service inherits WATCHDOG_PID; it must not ping for it.
  Environment env = {{"WATCHDOG_USEC", "3000000"}, {"WATCHDOG_PID", "41"}};
  EXPECT_EQ(WatchdogPingInterval(env, 42), std::nullopt);
}

TEST(WatchdogPingIntervalTest, OnWhenWatchdogPidIsOurs) {
  Environment env = {{"WATCHDOG_USEC", "1000"}, {"WATCHDOG_PID", "42"}};
  EXPECT_EQ(WatchdogPingInterval(env, 42), absl::Microseconds(500));
}

TEST(WatchdogPingIntervalTest, OffWhenMalformed) {
  EXPECT_EQ(WatchdogPingInterval({{"WATCHDOG_USEC", "soon"}}, 42), std::nullopt);
  EXPECT_EQ(WatchdogPingInterval({{"WATCHDOG_USEC", "0"}}, 42), std::nullopt);
}

// An abstract datagram socket standing in for systemd's notify socket.
class FakeNotifySocket {
 public:
  FakeNotifySocket() {
    name_ = absl::StrCat("@gateway-watchdog-test-", getpid());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name_.data() + 1, name_.size() - 1);
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  }
  ~FakeNotifySocket() { close(fd_); }
  Environment Env() const { return {{"NOTIFY_SOCKET", name_}}; }
  std::vector<std::string> Received() {
    std::vector<std::string> messages;
    char buffer[512];
    ssize_t n;
    while ((n = recv(fd_, buffer, sizeof buffer, 0)) > 0) messages.emplace_back(buffer, n);
    return messages;
  }

 private:
  std::string name_;
  int fd_ = -1;
};

TEST(WatchdogTest, SendsKeepAlivesEveryInterval) {
  FakeNotifySocket socket;
  SdNotifier notifier(socket.Env());
  {
    Watchdog watchdog(notifier, absl::Milliseconds(20));
    absl::SleepFor(absl::Milliseconds(150));
  }
  std::vector<std::string> received = socket.Received();
  EXPECT_GE(received.size(), 3u);
  EXPECT_LE(received.size(), 10u);
  for (const std::string& message : received) EXPECT_EQ(message, "WATCHDOG=1");
}

TEST(WatchdogTest, UnhealthyProcessWithholdsKeepAlives) {
  FakeNotifySocket socket;
  SdNotifier notifier(socket.Env());
  {
    Watchdog watchdog(notifier, absl::Milliseconds(10), [] { return false; });
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(socket.Received().empty());
}

TEST(WatchdogTest, StartsOnlyWhenRequested) {
  FakeNotifySocket socket;
  Environment env = socket.Env();
  SdNotifier notifier(env);
  EXPECT_EQ(Watchdog::StartIfRequested(notifier, env, getpid()), nullptr);
  env["WATCHDOG_USEC"] = "40000";
  env["WATCHDOG_PID"] = absl::StrCat(getpid());
  std::unique_ptr<Watchdog> watchdog = Watchdog::StartIfRequested(notifier, env, getpid());
  ASSERT_NE(watchdog, nullptr);
  EXPECT_EQ(watchdog->interval(), absl::Milliseconds(20));
}

}  // namespace
}  // namespace gateway
