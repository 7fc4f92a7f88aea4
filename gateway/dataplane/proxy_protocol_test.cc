// The PROXY protocol codec: byte-exact encodings, round trips, incremental
// parsing and the strictness of the parser.
#include "gateway/dataplane/proxy_protocol.h"

#include <sys/un.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

const std::string kSignature("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

SocketAddress Address(const std::string& text) {
  absl::StatusOr<SocketAddress> address = SocketAddress::Parse(text);
  EXPECT_TRUE(address.ok()) << address.status();
  return address.ok() ? *address : SocketAddress();
}

SocketAddress UnixAddress() {
  SocketAddress address;
  auto* un = reinterpret_cast<sockaddr_un*>(&address.storage);
  un->sun_family = AF_UNIX;
  std::strcpy(un->sun_path, "/run/gateway.sock");
  address.length = sizeof(sockaddr_un);
  return address;
}

// A v2 header from its parts: version/command byte, family byte, declared
// length and what follows.
std::string V2(unsigned char version_command, unsigned char family, size_t length,
               const std::string& rest = "") {
  std::string out = kSignature;
  out += static_cast<char>(version_command);
  out += static_cast<char>(family);
  out += static_cast<char>(length >> 8);
  out += static_cast<char>(length & 0xFF);
  return out + rest;
}

std::string Bytes(std::initializer_list<unsigned char> bytes) {
  return std::string(bytes.begin(), bytes.end());
}

struct Parsed {
  ProxyParse result;
  ProxyHeader header;
  std::string error;
};

Parsed Parse(const std::string& data) {
  Parsed parsed;
  parsed.result = ParseProxyHeader(data, &parsed.header, &parsed.error);
  return parsed;
}

// The spec's v1 examples, and the longest line (spec 2.1: 107 bytes).
const char kV1Ipv4[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
const char kV1Ipv6[] =
    "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    "65535 65535\r\n";
const char kV1LongestUnknown[] =
    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
    "65535 65535\r\n";

// 192.168.0.1:56324 -> 192.168.0.11:443, written out by hand.
const std::string kV2Ipv4 = kSignature + Bytes({0x21, 0x11, 0x00, 0x0C, 192, 168, 0, 1, 192, 168, 0,
                                                11, 0xDC, 0x04, 0x01, 0xBB});
// [2001:db8::1]:1234 -> [2001:db8::2]:443.
const std::string kV2Ipv6 =
    kSignature + Bytes({0x21, 0x21, 0x00, 0x24,                                      //
                        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  //
                        0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,  //
                        0x04, 0xD2, 0x01, 0xBB});
const std::string kV2Local = kSignature + Bytes({0x20, 0x00, 0x00, 0x00});
// kV2Ipv4 plus two TLVs: ALPN "h2" and a NOOP of 3 bytes.
const std::string kV2Ipv4WithTlvs =
    kSignature +
    Bytes({0x21, 0x11, 0x00, 0x0C + 5 + 6, 192,  168, 0,   1,    192,  168,  0, 11, 0xDC, 0x04,
           0x01, 0xBB, 0x01, 0x00,         0x02, 'h', '2', 0x04, 0x00, 0x03, 0, 0,  0});

TEST(ProxyProtocolEncodeTest, V1Ipv4IsTheSpecExample) {
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV1, Address("192.168.0.1:56324"),
                              Address("192.168.0.11:443")),
            kV1Ipv4);
}

TEST(ProxyProtocolEncodeTest, V1Ipv6UsesCompressedText) {
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV1, Address("[2001:db8::1]:1234"),
                              Address("[2001:db8::2]:443")),
            "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n");
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV1,
                              Address("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
                              Address("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")),
            kV1Ipv6);
}

TEST(ProxyProtocolEncodeTest, V1MixedOrUnixFamiliesAreUnknown) {
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV1, Address("1.2.3.4:5"), Address("[::1]:80")),
            "PROXY UNKNOWN\r\n");
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV1, UnixAddress(), UnixAddress()),
            "PROXY UNKNOWN\r\n");
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV1, SocketAddress(), SocketAddress()),
            "PROXY UNKNOWN\r\n");
}

TEST(ProxyProtocolEncodeTest, V2Ipv4IsByteExact) {
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV2, Address("192.168.0.1:56324"),
                              Address("192.168.0.11:443")),
            kV2Ipv4);
}

TEST(ProxyProtocolEncodeTest, V2Ipv6IsByteExact) {
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV2, Address("[2001:db8::1]:1234"),
                              Address("[2001:db8::2]:443")),
            kV2Ipv6);
}

TEST(ProxyProtocolEncodeTest, V2MixedOrUnixFamiliesAreLocal) {
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV2, Address("1.2.3.4:5"), Address("[::1]:80")),
            kV2Local);
  EXPECT_EQ(EncodeProxyHeader(ProxyVersion::kV2, UnixAddress(), UnixAddress()), kV2Local);
}

struct RoundTripCase {
  ProxyVersion version;
  const char* source;
  const char* destination;
};

class ProxyProtocolRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(ProxyProtocolRoundTripTest, ParsesBackWhatWasEncoded) {
  const RoundTripCase& c = GetParam();
  const std::string encoded =
      EncodeProxyHeader(c.version, Address(c.source), Address(c.destination));
  Parsed parsed = Parse(encoded);
  ASSERT_EQ(parsed.result, ProxyParse::kDone) << parsed.error;
  EXPECT_EQ(parsed.header.length, encoded.size());
  EXPECT_EQ(parsed.header.version, c.version);
  EXPECT_FALSE(parsed.header.local);
  EXPECT_EQ(parsed.header.source.ToString(), c.source);
  EXPECT_EQ(parsed.header.destination.ToString(), c.destination);
  EXPECT_EQ(parsed.header.source.length, Address(c.source).length);
}

INSTANTIATE_TEST_SUITE_P(
    VersionsAndFamilies, ProxyProtocolRoundTripTest,
    ::testing::Values(RoundTripCase{ProxyVersion::kV1, "10.0.0.1:40000", "10.0.0.2:8080"},
                      RoundTripCase{ProxyVersion::kV1, "0.0.0.0:0", "255.255.255.255:65535"},
                      RoundTripCase{ProxyVersion::kV1, "[2001:db8::7]:1", "[::1]:443"},
                      RoundTripCase{ProxyVersion::kV1, "[::ffff:1.2.3.4]:9", "[::]:0"},
                      RoundTripCase{ProxyVersion::kV2, "10.0.0.1:40000", "10.0.0.2:8080"},
                      RoundTripCase{ProxyVersion::kV2, "0.0.0.0:0", "255.255.255.255:65535"},
                      RoundTripCase{ProxyVersion::kV2, "[2001:db8::7]:1", "[::1]:443"},
                      RoundTripCase{ProxyVersion::kV2, "[::ffff:1.2.3.4]:9", "[::]:0"}));

const std::vector<std::string>& ValidHeaders() {
  static const auto* headers = new std::vector<std::string>{kV1Ipv4,
                                                            kV1Ipv6,
                                                            kV1LongestUnknown,
                                                            "PROXY UNKNOWN\r\n",
                                                            "PROXY TCP4 0.0.0.0 1.1.1.1 0 0\r\n",
                                                            kV2Ipv4,
                                                            kV2Ipv6,
                                                            kV2Local,
                                                            kV2Ipv4WithTlvs};
  return *headers;
}

TEST(ProxyProtocolParseTest, EveryPrefixOfAValidHeaderNeedsMore) {
  for (const std::string& header : ValidHeaders()) {
    for (size_t size = 0; size < header.size(); ++size) {
      Parsed parsed = Parse(header.substr(0, size));
      EXPECT_EQ(parsed.result, ProxyParse::kNeedMore)
          << "prefix of " << size << " bytes of " << absl::CHexEscape(header) << ": "
          << parsed.error;
    }
  }
}

TEST(ProxyProtocolParseTest, DataAfterTheHeaderIsNotConsumed) {
  for (const std::string& header : ValidHeaders()) {
    Parsed parsed = Parse(header + "GET / HTTP/1.1\r\n\r\n");
    ASSERT_EQ(parsed.result, ProxyParse::kDone) << absl::CHexEscape(header) << ": " << parsed.error;
    EXPECT_EQ(parsed.header.length, header.size()) << absl::CHexEscape(header);
  }
}

TEST(ProxyProtocolParseTest, V1SpecExamples) {
  Parsed ipv4 = Parse(kV1Ipv4);
  ASSERT_EQ(ipv4.result, ProxyParse::kDone) << ipv4.error;
  EXPECT_EQ(ipv4.header.version, ProxyVersion::kV1);
  EXPECT_EQ(ipv4.header.source.ToString(), "192.168.0.1:56324");
  EXPECT_EQ(ipv4.header.destination.ToString(), "192.168.0.11:443");

  Parsed ipv6 = Parse(kV1Ipv6);
  ASSERT_EQ(ipv6.result, ProxyParse::kDone) << ipv6.error;
  EXPECT_EQ(ipv6.header.source.ToString(), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

TEST(ProxyProtocolParseTest, V1UnknownIsLocalAndIgnoresTheRestOfTheLine) {
  ASSERT_EQ(std::string(kV1LongestUnknown).size(), kProxyV1MaxLength);
  for (const std::string& line : std::vector<std::string>{
           "PROXY UNKNOWN\r\n", "PROXY UNKNOWN whatever\r\n", kV1LongestUnknown}) {
    Parsed parsed = Parse(line);
    ASSERT_EQ(parsed.result, ProxyParse::kDone) << line << parsed.error;
    EXPECT_TRUE(parsed.header.local);
    EXPECT_EQ(parsed.header.length, line.size());
    EXPECT_EQ(parsed.header.source.family(), AF_UNSPEC);
  }
}

TEST(ProxyProtocolParseTest, V2SkipsTlvs) {
  Parsed parsed = Parse(kV2Ipv4WithTlvs);
  ASSERT_EQ(parsed.result, ProxyParse::kDone) << parsed.error;
  EXPECT_EQ(parsed.header.length, 16u + 12u + 11u);
  EXPECT_EQ(parsed.header.source.ToString(), "192.168.0.1:56324");
  EXPECT_EQ(parsed.header.destination.ToString(), "192.168.0.11:443");
}

TEST(ProxyProtocolParseTest, V2LocalAndProxyUnspecCarryNoAddresses) {
  const std::string ipv4_block = kV2Ipv4.substr(16);
  for (const std::string& header : {kV2Local, V2(0x21, 0x00, 0), V2(0x20, 0x11, 12, ipv4_block),
                                    V2(0x20, 0x11, 0), V2(0x20, 0x00, 3, "abc")}) {
    Parsed parsed = Parse(header);
    ASSERT_EQ(parsed.result, ProxyParse::kDone) << absl::CHexEscape(header) << parsed.error;
    EXPECT_TRUE(parsed.header.local);
    EXPECT_EQ(parsed.header.version, ProxyVersion::kV2);
    EXPECT_EQ(parsed.header.length, header.size());
    EXPECT_EQ(parsed.header.source.family(), AF_UNSPEC);
  }
}

TEST(ProxyProtocolParseTest, V2AcceptsTheLargestDeclaredLength) {
  const std::string header =
      V2(0x21, 0x11, kProxyV2MaxDeclaredLength,
         kV2Ipv4.substr(16) + std::string(kProxyV2MaxDeclaredLength - 12, '\0'));
  EXPECT_EQ(Parse(header.substr(0, header.size() - 1)).result, ProxyParse::kNeedMore);
  Parsed parsed = Parse(header);
  ASSERT_EQ(parsed.result, ProxyParse::kDone) << parsed.error;
  EXPECT_EQ(parsed.header.length, 16 + kProxyV2MaxDeclaredLength);
}

struct InvalidCase {
  std::string data;
  std::string reason;  // a part of the expected error
};

class ProxyProtocolInvalidTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(ProxyProtocolInvalidTest, IsRefusedWithAReason) {
  Parsed parsed = Parse(GetParam().data);
  ASSERT_EQ(parsed.result, ProxyParse::kInvalid) << absl::CHexEscape(GetParam().data);
  EXPECT_NE(parsed.error.find(GetParam().reason), std::string::npos) << parsed.error;
  EXPECT_EQ(parsed.error.find('\n'), std::string::npos) << parsed.error;
}

const std::string kIpv4Block = kV2Ipv4.substr(16);

INSTANTIATE_TEST_SUITE_P(
    V1, ProxyProtocolInvalidTest,
    ::testing::Values(
        InvalidCase{"GET / HTTP/1.1\r\n", "not a PROXY protocol header"},
        InvalidCase{"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
        InvalidCase{"PROXY\r\n", "not a PROXY protocol header"},
        InvalidCase{"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "single spaces"},
        InvalidCase{"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "single spaces"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", "single spaces"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "more than 6 fields"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "more than 6 fields"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "has 5 fields, expected 6"},
        InvalidCase{"PROXY TCP4\r\n", "has 2 fields, expected 6"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"},
        InvalidCase{"PROXY UNKNOWN\n", "LF without CR"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR not followed by LF"},
        InvalidCase{"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "bad v1 protocol 'TCP5'"},
        InvalidCase{"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "bad v1 protocol 'tcp4'"},
        InvalidCase{"PROXY UNKNOWNX\r\n", "bad v1 protocol 'UNKNOWNX'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n", "bad v1 source port '99999'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "bad v1 source port '65536'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n", "bad v1 source port '+80'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "bad v1 source port '-1'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "bad v1 source port '080'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x1\r\n", "bad v1 destination port '0x1'"},
        InvalidCase{"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad v1 source address '1.2.3.256'"},
        InvalidCase{"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad v1 source address '1.2.3'"},
        InvalidCase{"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "bad v1 source address '::1' for TCP4"},
        InvalidCase{"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
                    "bad v1 destination address '5.6.7.8' for TCP6"},
        InvalidCase{"PROXY TCP6 ::1 ::g 1 2\r\n", "bad v1 destination address '::g'"},
        InvalidCase{"PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "bad v1 source address"},
        // Refused before the line ends: no header starts like this.
        InvalidCase{"PROXY TCP5", "bad v1 protocol 'TCP5'"},
        InvalidCase{"PROXY TCP4 1.2.3.4x", "bad v1 source address '1.2.3.4x'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 01", "bad v1 source port '01'"},
        InvalidCase{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", "more than 6 fields"},
        // Longer than 107 bytes: without CRLF, and with it at bytes 107-108.
        InvalidCase{"PROXY UNKNOWN " + std::string(200, 'a'), "v1 line longer than 107 bytes"},
        InvalidCase{"PROXY UNKNOWN " + std::string(92, 'a') + "\r\n",
                    "v1 line longer than 107 bytes"},
        InvalidCase{"PROXY UNKNOWN " + std::string(92, 'a'), "v1 line longer than 107 bytes"}));

INSTANTIATE_TEST_SUITE_P(
    V2, ProxyProtocolInvalidTest,
    ::testing::Values(
        InvalidCase{std::string("\r\n\r\n\0\r\nQUIX\n", 12) + kV2Ipv4.substr(12),
                    "not a PROXY protocol header"},
        InvalidCase{std::string("\r\n\r\n\0\n", 6), "not a PROXY protocol header"},
        InvalidCase{std::string("\r\n\r\n\1", 5), "not a PROXY protocol header"},
        InvalidCase{V2(0x11, 0x11, 12, kIpv4Block), "bad v2 version 1 (expected 2)"},
        InvalidCase{kSignature + "\x31", "bad v2 version 3"},
        InvalidCase{V2(0x22, 0x11, 12, kIpv4Block), "bad v2 command 2"},
        InvalidCase{kSignature + "\x2F", "bad v2 command 15"},
        InvalidCase{V2(0x21, 0x12, 12, kIpv4Block), "unsupported v2 address family/protocol 0x12"},
        InvalidCase{V2(0x21, 0x22, 36), "unsupported v2 address family/protocol 0x22"},
        InvalidCase{V2(0x21, 0x31, 216), "unsupported v2 address family/protocol 0x31"},
        InvalidCase{V2(0x20, 0x32, 0), "unsupported v2 address family/protocol 0x32"},
        InvalidCase{V2(0x21, 0x41, 12), "bad v2 address family/protocol 0x41"},
        InvalidCase{V2(0x21, 0x10, 12), "bad v2 address family/protocol 0x10"},
        InvalidCase{V2(0x21, 0x11, 65535), "v2 declared length 65535 over 4096 (oversized)"},
        InvalidCase{V2(0x20, 0x00, 4097), "v2 declared length 4097 over 4096"},
        InvalidCase{V2(0x21, 0x11, 11, kIpv4Block.substr(0, 11)),
                    "v2 address length 11 too short for TCP over IPv4 (needs 12)"},
        InvalidCase{V2(0x21, 0x21, 12, kIpv4Block),
                    "v2 address length 12 too short for TCP over IPv6 (needs 36)"},
        InvalidCase{V2(0x21, 0x11, 0), "v2 address length 0 too short for TCP over IPv4"}));

}  // namespace
}  // namespace gateway
