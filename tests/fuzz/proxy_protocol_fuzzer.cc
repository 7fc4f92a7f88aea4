// libFuzzer target for the PROXY protocol parser (gateway/dataplane/
// proxy_protocol.h), which reads the first bytes a client sends. Checks:
// a parsed header fits in the input and parses the same from exactly its
// own bytes; every shorter prefix asks for more; a header with addresses
// re-encodes (same version) to one that parses back to the same addresses;
// a refusal gives a one-line reason and stays a refusal whatever follows;
// more is asked for only below the largest header.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "gateway/dataplane/proxy_protocol.h"

namespace {

using gateway::ParseProxyHeader;
using gateway::ProxyHeader;
using gateway::ProxyParse;

void Check(bool condition) {
  if (!condition) std::abort();
}

ProxyParse Parse(absl::string_view data, ProxyHeader* header) {
  std::string error;
  return ParseProxyHeader(data, header, &error);
}

void CheckDone(absl::string_view data, const ProxyHeader& header) {
  Check(header.length > 0 && header.length <= data.size());
  ProxyHeader exact;
  Check(Parse(data.substr(0, header.length), &exact) == ProxyParse::kDone);
  Check(exact.length == header.length && exact.local == header.local);
  // Every prefix for short headers; a sample for long (v2 with TLVs) ones.
  const size_t step = header.length <= 256 ? 1 : header.length / 64;
  for (size_t size = 0; size < header.length; size += step) {
    ProxyHeader ignored;
    Check(Parse(data.substr(0, size), &ignored) == ProxyParse::kNeedMore);
  }
  Check(Parse(data.substr(0, header.length - 1), &exact) == ProxyParse::kNeedMore);
  if (header.local) {
    Check(header.source.family() == AF_UNSPEC && header.destination.family() == AF_UNSPEC);
    return;
  }
  Check(header.source.family() == header.destination.family());
  Check(header.source.family() == AF_INET || header.source.family() == AF_INET6);
  const std::string again =
      gateway::EncodeProxyHeader(header.version, header.source, header.destination);
  ProxyHeader reparsed;
  Check(Parse(again, &reparsed) == ProxyParse::kDone);
  Check(reparsed.length == again.size());
  Check(!reparsed.local && reparsed.version == header.version);
  Check(reparsed.source.ToString() == header.source.ToString());
  Check(reparsed.destination.ToString() == header.destination.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  ProxyHeader header;
  std::string error;
  switch (ParseProxyHeader(input, &header, &error)) {
    case ProxyParse::kDone:
      CheckDone(input, header);
      break;
    case ProxyParse::kNeedMore: {
      Check(size < gateway::kProxyV2FixedLength + gateway::kProxyV2MaxDeclaredLength);
      if (size > 0 && data[0] == 'P') Check(size < gateway::kProxyV1MaxLength);
      if (size > 0) Check(Parse(input.substr(0, size - 1), &header) == ProxyParse::kNeedMore);
      break;
    }
    case ProxyParse::kInvalid: {
      Check(!error.empty() && error.find('\n') == std::string::npos && error.size() < 1024);
      const std::string longer = std::string(input) + "\r\n\r\n";
      Check(Parse(longer, &header) == ProxyParse::kInvalid);
      break;
    }
  }
  return 0;
}
