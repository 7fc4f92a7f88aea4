// See plugin_boundary.h.
#include "gateway/plugins/plugin_boundary.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"
#include "nlohmann/json.hpp"

namespace gateway {
namespace {

const char* LookUpCapturedEnv(const gateway_stop_context* view, const char* name) {
  if (view == nullptr || name == nullptr || view->gateway_private == nullptr) return nullptr;
  const auto* ctx = static_cast<const StopContext*>(view->gateway_private);
  auto it = ctx->environment.find(name);
  return it == ctx->environment.end() ? nullptr : it->second.c_str();
}

int32_t CPhase(Phase phase) {
  switch (phase) {
    case Phase::kStarting:
      return GATEWAY_PHASE_STARTING;
    case Phase::kServing:
      return GATEWAY_PHASE_SERVING;
    case Phase::kDraining:
      return GATEWAY_PHASE_DRAINING;
  }
  return GATEWAY_PHASE_SERVING;
}

}  // namespace

gateway_stop_context CViewOf(const StopContext& ctx, bool dry_run) {
  gateway_stop_context view = {};
  view.abi_version = GATEWAY_DETECTOR_PLUGIN_ABI_VERSION;
  view.signo = ctx.signal.signo;
  view.si_code = ctx.signal.code;
  view.sender_pid = ctx.signal.sender_pid;
  view.sender_uid = ctx.signal.sender_uid;
  view.sender_readable = ctx.sender.readable ? 1 : 0;
  view.sender_comm = ctx.sender.comm.c_str();
  view.self_pid = ctx.self.pid;
  view.self_ppid = ctx.parent.pid;
  view.self_start_time_ticks = ctx.self.start_time_ticks;
  view.self_boot_id = ctx.self.boot_id.c_str();
  view.self_uid = ctx.self_uid;
  view.parent_comm = ctx.parent.comm.c_str();
  view.phase = CPhase(ctx.phase);
  view.now_unix_ms = absl::ToUnixMillis(ctx.now);
  view.dry_run = dry_run ? 1 : 0;
  view.getenv = &LookUpCapturedEnv;
  view.gateway_private = &ctx;
  return view;
}

absl::StatusOr<std::optional<Verdict>> VerdictFromAnswer(const DetectAnswer& answer) {
  Verdict verdict;
  switch (answer.stop_class) {
    case GATEWAY_STOP_NONE:
      return std::nullopt;
    case GATEWAY_STOP_TAKEOVER:
      verdict.stop_class = StopClass::kTakeover;
      break;
    case GATEWAY_STOP_PLANNED:
      verdict.stop_class = StopClass::kPlanned;
      break;
    case GATEWAY_STOP_UNEXPECTED:
      verdict.stop_class = StopClass::kUnexpected;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "detect() returned ", answer.stop_class,
          ", which is not a stop class (0 none, 1 takeover, 2 planned, 3 unexpected)"));
  }
  const void* nul = std::memchr(answer.evidence, '\0', sizeof answer.evidence);
  if (nul == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "detect() left its evidence without a terminating NUL in the ", kEvidenceSize,
        "-byte buffer"));
  }
  verdict.evidence.assign(answer.evidence, static_cast<const char*>(nul));
  for (char& c : verdict.evidence) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (!IsValidUtf8(verdict.evidence)) {
    return absl::InvalidArgumentError("detect() wrote evidence that is not UTF-8 text");
  }
  return verdict;
}

}  // namespace gateway
