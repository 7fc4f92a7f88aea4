// Black-box resource limits (issue 8): a service manager that does not
// read its notify socket.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/harness/harness.h"
#include "tests/harness/net_harness.h"

namespace gateway::testing {
namespace {

std::string TestName() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// A service manager that does not drain its notify socket (its queue holds
// net.unix.max_dgram_qlen datagrams) must not hang start-up or the stop.
TEST(ResourceLimitsTest, FullNotifySocketDoesNotHangStartupOrStop) {
  std::string name = absl::StrCat("@gateway-full-notify-", getpid());
  int manager = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data() + 1, name.size() - 1);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  ASSERT_EQ(bind(manager, reinterpret_cast<sockaddr*>(&addr), len), 0);
  int filler = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  for (int i = 0; i < 100000; ++i) {  // until the queue is full
    if (sendto(filler, "X=1", 3, 0, reinterpret_cast<sockaddr*>(&addr), len) < 0) break;
  }
  Gateway::Options options;
  options.notify = false;
  options.extra_env["NOTIFY_SOCKET"] = name;
  Gateway gw(TestName(), options);
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(gw.Log(), "serving;"); }, absl::Seconds(10)))
      << gw.Log();
  SignalFromSibling(gw.pid(), SIGTERM);
  ExitStatus exit = gw.Wait(absl::Seconds(10));
  EXPECT_TRUE(exit.exited && exit.code == 1) << exit.Describe() << gw.Log();
  close(filler);
  close(manager);
}

}  // namespace
}  // namespace gateway::testing
