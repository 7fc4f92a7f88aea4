// SocketAddress parsing and the compact form a connection keeps.
#include "gateway/base/net.h"

#include <sys/un.h>

#include <cstring>

#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(CompactAddressTest, KeepsIpv4AndIpv6AddressesWhole) {
  for (const char* text : {"127.0.0.1:8080", "10.1.2.3:1", "[::1]:443", "[2001:db8::7]:65535"}) {
    absl::StatusOr<SocketAddress> address = SocketAddress::Parse(text);
    ASSERT_TRUE(address.ok()) << text;
    CompactAddress compact(*address);
    EXPECT_FALSE(compact.empty());
    SocketAddress back = compact.Get();
    EXPECT_EQ(back.ToString(), text);
    EXPECT_EQ(back.length, address->length);
    EXPECT_EQ(std::memcmp(&back.storage, &address->storage, address->length), 0) << text;
  }
  EXPECT_LT(sizeof(CompactAddress), sizeof(SocketAddress) / 3) << "no smaller than it was";
}

TEST(CompactAddressTest, UnsetOrOtherFamiliesAreUnset) {
  EXPECT_TRUE(CompactAddress().empty());
  EXPECT_EQ(CompactAddress().Get().length, 0u);
  EXPECT_TRUE(CompactAddress(SocketAddress()).empty());
  SocketAddress unix_address;
  sockaddr_un un = {};
  un.sun_family = AF_UNIX;
  std::strcpy(un.sun_path, "/run/gateway/control.sock");
  std::memcpy(&unix_address.storage, &un, sizeof un);
  unix_address.length = sizeof un;
  EXPECT_TRUE(CompactAddress(unix_address).empty());
}

}  // namespace
}  // namespace gateway
