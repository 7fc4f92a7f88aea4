// See proxy_protocol.h. The spec: HAProxy's doc/proxy-protocol.txt.
#include "gateway/dataplane/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace gateway {
namespace {

// "\r\n\r\n\0\r\nQUIT\n", which no v1 line or common protocol starts with.
constexpr absl::string_view kV2Signature("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);
constexpr absl::string_view kV1Signature = "PROXY ";

// v2 byte 12: version (high nibble) and command (low nibble).
constexpr unsigned char kV2VersionLocal = 0x20;
constexpr unsigned char kV2VersionProxy = 0x21;
// v2 byte 13: address family (high nibble) and transport (low nibble).
constexpr unsigned char kV2Unspec = 0x00;
constexpr unsigned char kV2TcpOverIpv4 = 0x11;
constexpr unsigned char kV2TcpOverIpv6 = 0x21;
// Address block sizes: two addresses, two 16-bit ports.
constexpr size_t kV2Ipv4AddressLength = 2 * 4 + 2 * 2;
constexpr size_t kV2Ipv6AddressLength = 2 * 16 + 2 * 2;

// The longest text inet_pton accepts for IPv6 ("ffff:...:255.255.255.255").
constexpr size_t kMaxIpv6TextLength = INET6_ADDRSTRLEN - 1;
constexpr size_t kMaxIpv4TextLength = INET_ADDRSTRLEN - 1;

// Whether `data` and `signature` agree on their common length, i.e. `data`
// may still turn out to start with `signature`.
bool MatchesSoFar(absl::string_view data, absl::string_view signature) {
  size_t common = std::min(data.size(), signature.size());
  return data.substr(0, common) == signature.substr(0, common);
}

// For error messages: attacker bytes, escaped so the reason stays one line.
std::string Quoted(absl::string_view text) {
  return absl::StrCat("'", absl::CHexEscape(text), "'");
}

ProxyParse Invalid(std::string* error, std::string reason) {
  *error = std::move(reason);
  return ProxyParse::kInvalid;
}

bool IsIpPair(const SocketAddress& a, const SocketAddress& b, int family) {
  return a.family() == family && b.family() == family;
}

const sockaddr_in& AsIpv4(const SocketAddress& address) {
  return *reinterpret_cast<const sockaddr_in*>(&address.storage);
}
const sockaddr_in6& AsIpv6(const SocketAddress& address) {
  return *reinterpret_cast<const sockaddr_in6*>(&address.storage);
}

// An address from its network-order bytes (`host`: 4 or 16 of them, `port`:
// 2), as both v2 and inet_pton lay them out.
SocketAddress AddressFromBytes(int family, const void* host, const void* port) {
  SocketAddress address;
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, host, sizeof v4->sin_addr);
    std::memcpy(&v4->sin_port, port, sizeof v4->sin_port);
    address.length = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
    v6->sin6_family = AF_INET6;
    std::memcpy(&v6->sin6_addr, host, sizeof v6->sin6_addr);
    std::memcpy(&v6->sin6_port, port, sizeof v6->sin6_port);
    address.length = sizeof(sockaddr_in6);
  }
  return address;
}

// The host part in the spec's v1 form: dotted quad, or RFC 4291 text.
std::string HostText(const SocketAddress& address) {
  char host[INET6_ADDRSTRLEN] = {};
  if (address.family() == AF_INET) {
    inet_ntop(AF_INET, &AsIpv4(address).sin_addr, host, sizeof host);
  } else {
    inet_ntop(AF_INET6, &AsIpv6(address).sin6_addr, host, sizeof host);
  }
  return host;
}

std::string EncodeV1(const SocketAddress& source, const SocketAddress& destination) {
  const char* protocol = IsIpPair(source, destination, AF_INET)    ? "TCP4"
                         : IsIpPair(source, destination, AF_INET6) ? "TCP6"
                                                                   : nullptr;
  if (protocol == nullptr) return "PROXY UNKNOWN\r\n";
  return absl::StrCat("PROXY ", protocol, " ", HostText(source), " ", HostText(destination), " ",
                      source.port(), " ", destination.port(), "\r\n");
}

void AppendBytes(std::string* out, const void* bytes, size_t size) {
  out->append(static_cast<const char*>(bytes), size);
}

std::string EncodeV2(const SocketAddress& source, const SocketAddress& destination) {
  std::string out(kV2Signature);
  if (IsIpPair(source, destination, AF_INET)) {
    out += static_cast<char>(kV2VersionProxy);
    out += static_cast<char>(kV2TcpOverIpv4);
    out += '\0';
    out += static_cast<char>(kV2Ipv4AddressLength);
    AppendBytes(&out, &AsIpv4(source).sin_addr, 4);
    AppendBytes(&out, &AsIpv4(destination).sin_addr, 4);
    AppendBytes(&out, &AsIpv4(source).sin_port, 2);
    AppendBytes(&out, &AsIpv4(destination).sin_port, 2);
  } else if (IsIpPair(source, destination, AF_INET6)) {
    out += static_cast<char>(kV2VersionProxy);
    out += static_cast<char>(kV2TcpOverIpv6);
    out += '\0';
    out += static_cast<char>(kV2Ipv6AddressLength);
    AppendBytes(&out, &AsIpv6(source).sin6_addr, 16);
    AppendBytes(&out, &AsIpv6(destination).sin6_addr, 16);
    AppendBytes(&out, &AsIpv6(source).sin6_port, 2);
    AppendBytes(&out, &AsIpv6(destination).sin6_port, 2);
  } else {
    out += static_cast<char>(kV2VersionLocal);
    out += static_cast<char>(kV2Unspec);
    out += '\0';
    out += '\0';
  }
  return out;
}

// --- v1 ---------------------------------------------------------------

// A v1 address field of `family`. A partial field (the last one read, its
// end not seen yet) is checked by its characters and length only; a whole
// one by inet_pton, which writes the address to `host`.
bool CheckV1Host(int family, absl::string_view field, bool partial, void* host) {
  const bool v4 = family == AF_INET;
  const size_t max_length = v4 ? kMaxIpv4TextLength : kMaxIpv6TextLength;
  if (field.size() > max_length) return false;
  for (char c : field) {
    bool allowed =
        absl::ascii_isdigit(c) || c == '.' || (!v4 && (absl::ascii_isxdigit(c) || c == ':'));
    if (!allowed) return false;
  }
  if (partial) return true;
  char text[INET6_ADDRSTRLEN] = {};
  std::memcpy(text, field.data(), field.size());
  return inet_pton(family, text, host) == 1;
}

// A v1 port: decimal 0-65535 without sign or leading zeros. A partial
// field may be empty.
bool CheckV1Port(absl::string_view field, bool partial, uint16_t* port) {
  if (field.empty()) return partial;
  if (field.size() > 5 || (field[0] == '0' && field.size() > 1)) return false;
  uint32_t value = 0;
  for (char c : field) {
    if (!absl::ascii_isdigit(c)) return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  *port = htons(static_cast<uint16_t>(value));
  return true;
}

// Takes the next space-separated field off `*rest`; returns whether a space
// followed it (so it is whole and another field starts).
bool NextV1Field(absl::string_view* rest, absl::string_view* field) {
  size_t space = rest->find(' ');
  if (space == absl::string_view::npos) {
    *field = *rest;
    *rest = absl::string_view();
    return false;
  }
  *field = rest->substr(0, space);
  rest->remove_prefix(space + 1);
  return true;
}

// The fields of a v1 line after "PROXY ", without CRLF. `complete`: the
// line's end has been seen; otherwise its last field may still grow.
// Returns kDone (complete and valid, *parsed filled), kNeedMore (a valid
// prefix) or kInvalid.
ProxyParse ParseV1Fields(absl::string_view rest, bool complete, ProxyHeader* parsed,
                         std::string* error) {
  absl::string_view protocol;
  bool more = NextV1Field(&rest, &protocol);
  if (!more && !complete) {
    for (absl::string_view known : {"TCP4", "TCP6", "UNKNOWN"}) {
      if (absl::StartsWith(known, protocol)) return ProxyParse::kNeedMore;
    }
    return Invalid(error, absl::StrCat("bad v1 protocol ", Quoted(protocol),
                                       " (expected TCP4, TCP6 or UNKNOWN)"));
  }
  // UNKNOWN: whatever follows on the line is to be ignored (spec 2.1).
  if (protocol == "UNKNOWN") {
    parsed->local = true;
    return complete ? ProxyParse::kDone : ProxyParse::kNeedMore;
  }
  if (protocol.empty() && more) {
    return Invalid(error, "v1 fields must be separated by single spaces");
  }
  int family;
  if (protocol == "TCP4") {
    family = AF_INET;
  } else if (protocol == "TCP6") {
    family = AF_INET6;
  } else {
    return Invalid(error, absl::StrCat("bad v1 protocol ", Quoted(protocol),
                                       " (expected TCP4, TCP6 or UNKNOWN)"));
  }
  // Source host, destination host, source port, destination port.
  static constexpr const char* kFieldNames[] = {"source address", "destination address",
                                                "source port", "destination port"};
  unsigned char hosts[2][16] = {};
  uint16_t ports[2] = {};
  int fields = 0;
  for (; more; ++fields) {
    if (fields == 4) {
      return Invalid(error, absl::StrCat("v1 ", protocol, " line has more than 6 fields"));
    }
    absl::string_view field;
    more = NextV1Field(&rest, &field);
    const bool partial = !more && !complete;
    if (field.empty() && !partial) {
      return Invalid(error, "v1 fields must be separated by single spaces");
    }
    bool ok = fields < 2 ? CheckV1Host(family, field, partial, hosts[fields])
                         : CheckV1Port(field, partial, &ports[fields - 2]);
    if (!ok) {
      return Invalid(error, absl::StrCat("bad v1 ", kFieldNames[fields], " ", Quoted(field),
                                         " for ", protocol));
    }
  }
  if (!complete) return ProxyParse::kNeedMore;
  if (fields != 4) {
    return Invalid(error,
                   absl::StrCat("v1 ", protocol, " line has ", fields + 2, " fields, expected 6"));
  }
  parsed->source = AddressFromBytes(family, hosts[0], &ports[0]);
  parsed->destination = AddressFromBytes(family, hosts[1], &ports[1]);
  return ProxyParse::kDone;
}

// `data` may start with "PROXY " (checked by the caller on what there is).
ProxyParse ParseV1(absl::string_view data, ProxyHeader* header, std::string* error) {
  if (data.size() < kV1Signature.size()) return ProxyParse::kNeedMore;
  // Nothing past the longest line can be part of it.
  absl::string_view window = data.substr(0, kProxyV1MaxLength);
  const size_t end = window.find_first_of("\r\n");
  const bool complete = end != absl::string_view::npos;
  absl::string_view line = complete ? window.substr(0, end) : window;
  ProxyHeader parsed;
  parsed.version = ProxyVersion::kV1;
  ProxyParse fields = ParseV1Fields(line.substr(kV1Signature.size()), complete, &parsed, error);
  if (fields == ProxyParse::kInvalid) return fields;
  const std::string too_long = absl::StrCat("v1 line longer than ", kProxyV1MaxLength, " bytes");
  if (!complete) {
    // The CR could only come at byte 106 or later: past the limit.
    if (window.size() >= kProxyV1MaxLength - 1) return Invalid(error, too_long);
    return ProxyParse::kNeedMore;
  }
  if (window[end] == '\n') return Invalid(error, "v1 line ends in LF without CR");
  if (end + 1 == window.size()) {
    if (window.size() == kProxyV1MaxLength) return Invalid(error, too_long);
    return ProxyParse::kNeedMore;
  }
  if (window[end + 1] != '\n') return Invalid(error, "v1 line has a CR not followed by LF");
  parsed.length = end + 2;
  *header = parsed;
  return ProxyParse::kDone;
}

// --- v2 ---------------------------------------------------------------

const char* V2FamilyName(unsigned char family) {
  switch (family) {
    case kV2Unspec:
      return "UNSPEC";
    case kV2TcpOverIpv4:
      return "TCP over IPv4";
    case kV2TcpOverIpv6:
      return "TCP over IPv6";
    case 0x12:
      return "UDP over IPv4";
    case 0x22:
      return "UDP over IPv6";
    case 0x31:
      return "stream over UNIX";
    case 0x32:
      return "datagram over UNIX";
    default:
      return nullptr;
  }
}

std::string Hex(unsigned char byte) { return absl::StrCat("0x", absl::Hex(byte, absl::kZeroPad2)); }

// `data` may start with the v2 signature (checked by the caller on what
// there is). Each byte of the fixed part is checked as soon as it arrives.
ProxyParse ParseV2(absl::string_view data, ProxyHeader* header, std::string* error) {
  const auto byte = [&data](size_t i) { return static_cast<unsigned char>(data[i]); };
  if (data.size() <= 12) return ProxyParse::kNeedMore;
  const unsigned char version = byte(12) >> 4;
  const unsigned char command = byte(12) & 0x0F;
  if (version != 2)
    return Invalid(error, absl::StrCat("bad v2 version ", version, " (expected 2)"));
  if (command > 1) {
    return Invalid(error,
                   absl::StrCat("bad v2 command ", command, " (expected 0 LOCAL or 1 PROXY)"));
  }
  if (data.size() <= 13) return ProxyParse::kNeedMore;
  const unsigned char family = byte(13);
  const char* family_name = V2FamilyName(family);
  if (family_name == nullptr) {
    return Invalid(error, absl::StrCat("bad v2 address family/protocol ", Hex(family)));
  }
  if (family != kV2Unspec && family != kV2TcpOverIpv4 && family != kV2TcpOverIpv6) {
    return Invalid(error, absl::StrCat("unsupported v2 address family/protocol ", Hex(family), " (",
                                       family_name, "); only TCP over IPv4 or IPv6"));
  }
  if (data.size() < kProxyV2FixedLength) return ProxyParse::kNeedMore;
  const size_t declared = static_cast<size_t>(byte(14)) << 8 | byte(15);
  if (declared > kProxyV2MaxDeclaredLength) {
    return Invalid(error, absl::StrCat("v2 declared length ", declared, " over ",
                                       kProxyV2MaxDeclaredLength, " (oversized)"));
  }
  // LOCAL ignores the address block; PROXY with UNSPEC carries none the
  // receiver may use (spec 2.2), so it is treated the same.
  const bool local = command == 0 || family == kV2Unspec;
  const size_t needed = family == kV2TcpOverIpv4 ? kV2Ipv4AddressLength : kV2Ipv6AddressLength;
  if (!local && declared < needed) {
    return Invalid(error, absl::StrCat("v2 address length ", declared, " too short for ",
                                       family_name, " (needs ", needed, ")"));
  }
  if (data.size() < kProxyV2FixedLength + declared) return ProxyParse::kNeedMore;
  ProxyHeader parsed;
  parsed.version = ProxyVersion::kV2;
  parsed.length = kProxyV2FixedLength + declared;
  parsed.local = local;
  if (!local) {
    // Source address, destination address, source port, destination port;
    // then TLVs up to `declared`, skipped.
    const char* block = data.data() + kProxyV2FixedLength;
    const int address_family = family == kV2TcpOverIpv4 ? AF_INET : AF_INET6;
    const size_t host_size = family == kV2TcpOverIpv4 ? 4 : 16;
    parsed.source = AddressFromBytes(address_family, block, block + 2 * host_size);
    parsed.destination =
        AddressFromBytes(address_family, block + host_size, block + 2 * host_size + 2);
  }
  *header = parsed;
  return ProxyParse::kDone;
}

}  // namespace

std::string EncodeProxyHeader(ProxyVersion version, const SocketAddress& source,
                              const SocketAddress& destination) {
  return version == ProxyVersion::kV1 ? EncodeV1(source, destination)
                                      : EncodeV2(source, destination);
}

ProxyParse ParseProxyHeader(absl::string_view data, ProxyHeader* header, std::string* error) {
  if (data.empty()) return ProxyParse::kNeedMore;
  if (MatchesSoFar(data, kV1Signature)) return ParseV1(data, header, error);
  if (MatchesSoFar(data, kV2Signature)) return ParseV2(data, header, error);
  return Invalid(error, "not a PROXY protocol header");
}

}  // namespace gateway
