// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the
// header a gateway sends first on an upstream connection so the upstream
// learns the client's address, and a strict, incremental parser of it for a
// listener that accepts it. Pure codec: no sockets, no event loop; the
// caller reads bytes and calls ParseProxyHeader on what it has so far.
#ifndef GATEWAY_DATAPLANE_PROXY_PROTOCOL_H_
#define GATEWAY_DATAPLANE_PROXY_PROTOCOL_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/base/net.h"

namespace gateway {

enum class ProxyVersion { kV1, kV2 };

// A v1 line is at most 107 bytes including CRLF ("PROXY UNKNOWN" with two
// full IPv6 addresses and ports).
inline constexpr size_t kProxyV1MaxLength = 107;
// The fixed part of a v2 header: signature, version/command, family,
// length.
inline constexpr size_t kProxyV2FixedLength = 16;
// The largest v2 address block (addresses and TLVs) accepted. The spec
// allows 65535; refusing more bounds what a client can make us buffer.
inline constexpr size_t kProxyV2MaxDeclaredLength = 4096;

// The header sent first on an upstream connection: `source` is the
// client's address, `destination` the address the client connected to
// (our listen side). When the two are not both IPv4 or both IPv6 (mixed
// families, AF_UNIX, unset), v1 sends "PROXY UNKNOWN\r\n" and v2 the LOCAL
// command with AF_UNSPEC: the upstream then uses the connection's own
// endpoints.
std::string EncodeProxyHeader(ProxyVersion version, const SocketAddress& source,
                              const SocketAddress& destination);

struct ProxyHeader {
  // Bytes the header took; the stream's payload starts there.
  size_t length = 0;
  // v1 UNKNOWN, v2 LOCAL (or PROXY with AF_UNSPEC): no addresses were
  // carried, use the socket's own. `source` and `destination` are then
  // unset (family AF_UNSPEC).
  bool local = false;
  SocketAddress source;
  SocketAddress destination;
  ProxyVersion version = ProxyVersion::kV1;
};

enum class ProxyParse {
  kNeedMore,  // `data` is a valid prefix of a header: read more, call again.
  kDone,      // *header is filled; header->length bytes are the header.
  kInvalid,   // *error says why, in one line.
};

// Parses the start of a stream, `data` being all that has been read so far.
// kNeedMore only while `data` is a valid prefix of some header and shorter
// than the largest one (v1: 107 bytes; v2: 16 + declared length, declared
// lengths over 4096 refused). Strict: v1 needs "PROXY", single spaces,
// TCP4/TCP6 with addresses of that family and ports 0-65535 written in
// canonical decimal, or UNKNOWN, and CRLF; v2 needs version 2, command
// LOCAL or PROXY, and TCP over IPv4/IPv6 or UNSPEC (UDP and UNIX are
// refused as unsupported). v2 TLVs are skipped. Never reads past
// data.size(); allocates nothing proportional to the input beyond the
// bounded error text.
ProxyParse ParseProxyHeader(absl::string_view data, ProxyHeader* header, std::string* error);

}  // namespace gateway

#endif  // GATEWAY_DATAPLANE_PROXY_PROTOCOL_H_
