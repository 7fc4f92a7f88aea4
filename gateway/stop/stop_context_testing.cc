// See stop_context_testing.h.
#include "gateway/stop/stop_context_testing.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gateway/stop/detector_registry.h"

namespace gateway {

std::unique_ptr<StopReasonDetector> DetectorForTest(const std::string& name) {
  absl::StatusOr<DetectorRegistry> registry =
      DetectorRegistry::Builder::FromStaticRegistrations().Build();
  const DetectorRegistration* registration =
      registry.ok() ? registry->Find(name) : nullptr;
  if (registration == nullptr) {
    std::fprintf(stderr, "detector '%s' is not registered in this test binary\n", name.c_str());
    std::abort();
  }
  return registration->factory();
}

StopContext ContextForTest() {
  StopContext ctx;
  ctx.signal.signo = SIGTERM;
  ctx.signal.code = SI_USER;
  ctx.signal.sender_pid = 777;
  ctx.signal.sender_uid = 0;
  ctx.sender.pid = 777;
  ctx.sender.comm = "bash";
  ctx.sender.readable = true;
  ctx.self.pid = 4242;
  ctx.self.start_time_ticks = 123456;
  ctx.self.boot_id = "0f6b1d4e-7c2a-4f2e-9d1a-000000000001";
  ctx.self_uid = 0;
  ctx.parent.pid = 100;
  ctx.parent.comm = "bash";
  ctx.parent.readable = true;
  ctx.now = absl::FromUnixSeconds(1796000000);
  ctx.phase = Phase::kServing;
  return ctx;
}

void SetSenderForTest(StopContext& ctx, pid_t pid, const std::string& comm,
                      std::vector<std::string> cmdline) {
  ctx.signal.sender_pid = pid;
  ctx.sender.pid = pid;
  ctx.sender.comm = comm;
  ctx.sender.cmdline = std::move(cmdline);
  ctx.sender.readable = true;
}

void SetParentForTest(StopContext& ctx, pid_t pid, const std::string& comm,
                      std::vector<std::string> cmdline, bool sent_by_parent) {
  ctx.parent.pid = pid;
  ctx.parent.comm = comm;
  ctx.parent.cmdline = cmdline;
  ctx.parent.readable = true;
  if (sent_by_parent) SetSenderForTest(ctx, pid, comm, cmdline);
}

Marker MarkerForTest(const StopContext& ctx, absl::Duration age, pid_t writer_pid,
                     const std::string& reason) {
  Marker m;
  m.target = ctx.self;
  m.written_at = ctx.now - age;
  m.writer_pid = writer_pid;
  m.reason = reason;
  m.nonce = absl::StrCat("nonce-", writer_pid);
  return m;
}

std::optional<Marker> FakeMarkerStore::Find(MarkerKind kind, const ProcessIdentity& self,
                                            uid_t self_uid, absl::Time now) {
  auto it = markers_.find(kind);
  if (it == markers_.end()) return std::nullopt;
  if (std::optional<std::string> why = WhyMarkerDoesNotApply(it->second, self, now,
                                                             kDefaultMarkerTtl)) {
    warnings_.push_back(absl::StrCat("ignoring ", MarkerFileName(kind), ": ", *why));
    return std::nullopt;
  }
  return it->second;
}

void FakeMarkerStore::Consume(MarkerKind kind, const Marker& marker) {
  markers_.erase(kind);
  ++consumed_;
}

std::vector<std::string> FakeMarkerStore::TakeWarnings() { return std::exchange(warnings_, {}); }

}  // namespace gateway
