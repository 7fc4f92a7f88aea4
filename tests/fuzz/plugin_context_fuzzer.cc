// libFuzzer target for the runtime-plugin boundary (gateway/plugins/plugin_boundary.h):
// a StopContext built from fuzzed strings (sender and parent names, boot
// id, captured environment) is turned into the C view a plugin reads, a
// simulated plugin reads every field and asks for fuzzed environment
// names, then writes a fuzzed answer (class and evidence bytes) that
// VerdictFromAnswer checks. Beyond "no crash, no sanitizer report": the
// view's strings and getenv() answers equal the context's, and an
// accepted verdict has a known class and one-line evidence that fits the
// buffer and serialises as JSON.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gateway/plugins/plugin_boundary.h"
#include "nlohmann/json.hpp"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

// Consumes a length-prefixed string (one byte of length) from the input.
std::string Take(const uint8_t*& data, size_t& size) {
  if (size == 0) return std::string();
  size_t length = std::min<size_t>(data[0], size - 1);
  std::string out(reinterpret_cast<const char*>(data + 1), length);
  data += 1 + length;
  size -= 1 + length;
  return out;
}

// C strings cannot hold NUL: the gateway's strings never do either.
std::string CString(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '\0'), s.end());
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gateway::StopContext ctx;
  ctx.signal.signo = size > 0 ? data[0] % 65 : 15;
  ctx.signal.code = size > 1 ? static_cast<int8_t>(data[1]) : 0;
  ctx.sender.comm = CString(Take(data, size));
  ctx.sender.readable = !ctx.sender.comm.empty();
  ctx.parent.comm = CString(Take(data, size));
  ctx.self.boot_id = CString(Take(data, size));
  ctx.phase = static_cast<gateway::Phase>((size > 0 ? data[0] : 0) % 3);
  for (int i = 0; i < 4 && size > 0; ++i) {
    std::string key = CString(Take(data, size));
    ctx.environment[key] = CString(Take(data, size));
  }
  const std::string asked = CString(Take(data, size));

  gateway_stop_context view = gateway::CViewOf(ctx, /*dry_run=*/true);
  Check(view.abi_version == GATEWAY_DETECTOR_PLUGIN_ABI_VERSION);
  Check(view.signo == ctx.signal.signo);
  Check(std::strcmp(view.sender_comm, ctx.sender.comm.c_str()) == 0);
  Check(std::strcmp(view.parent_comm, ctx.parent.comm.c_str()) == 0);
  Check(std::strcmp(view.self_boot_id, ctx.self.boot_id.c_str()) == 0);
  Check(view.dry_run == 1);
  const char* value = view.getenv(&view, asked.c_str());
  auto it = ctx.environment.find(asked);
  Check((value == nullptr) == (it == ctx.environment.end()));
  if (value != nullptr) Check(it->second == value);
  Check(view.getenv(nullptr, asked.c_str()) == nullptr);
  Check(view.getenv(&view, nullptr) == nullptr);

  // What a plugin writes back: the rest of the input, as is.
  gateway::DetectAnswer answer;
  std::memset(answer.evidence, '?', sizeof answer.evidence);
  if (size >= sizeof answer.stop_class) {
    std::memcpy(&answer.stop_class, data, sizeof answer.stop_class);
    data += sizeof answer.stop_class;
    size -= sizeof answer.stop_class;
  }
  std::memcpy(answer.evidence, data, std::min(size, sizeof answer.evidence));
  absl::StatusOr<std::optional<gateway::Verdict>> verdict = gateway::VerdictFromAnswer(answer);
  if (!verdict.ok() || !verdict->has_value()) return 0;
  const gateway::Verdict& v = **verdict;
  Check(answer.stop_class >= GATEWAY_STOP_TAKEOVER && answer.stop_class <= GATEWAY_STOP_UNEXPECTED);
  Check(v.evidence.size() < gateway::kEvidenceSize);
  for (char c : v.evidence) Check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
  (void)nlohmann::json(v.evidence).dump();  // throws (and aborts) if not UTF-8
  return 0;
}
