// Fabricated evidence for detector unit tests: a StopContext builder with
// readable defaults, and an in-memory MarkerStore.
#ifndef GATEWAY_STOP_STOP_CONTEXT_TESTING_H_
#define GATEWAY_STOP_STOP_CONTEXT_TESTING_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gateway/stop/detector.h"
#include "gateway/stop/markers.h"
#include "gateway/stop/stop_context.h"

namespace gateway {

// The detector registered (GATEWAY_REGISTER_DETECTOR) under `name`, created
// through the same factory the gateway uses. Fails the test if absent.
std::unique_ptr<StopReasonDetector> DetectorForTest(const std::string& name);

// A SIGTERM (SI_USER) sent by pid 777 ("bash", uid 0) to pid 4242, whose
// parent is pid 100 ("bash"), with an empty environment, while serving.
StopContext ContextForTest();

// Sets the sender (pid, comm, and the sender's cmdline).
void SetSenderForTest(StopContext& ctx, pid_t pid, const std::string& comm,
                      std::vector<std::string> cmdline = {});
// Sets our parent; with `sent_by_parent`, the parent also sent the signal.
void SetParentForTest(StopContext& ctx, pid_t pid, const std::string& comm,
                      std::vector<std::string> cmdline = {}, bool sent_by_parent = false);

// A marker naming ctx.self, written `age` before ctx.now by `writer_pid`.
Marker MarkerForTest(const StopContext& ctx, absl::Duration age, pid_t writer_pid,
                     const std::string& reason);

// Markers held in memory, checked with the same rules as on disk
// (WhyMarkerDoesNotApply); records what was consumed.
class FakeMarkerStore : public MarkerStore {
 public:
  void Put(MarkerKind kind, const Marker& marker) { markers_[kind] = marker; }
  std::optional<Marker> Find(MarkerKind kind, const ProcessIdentity& self, uid_t self_uid,
                             absl::Time now) override;
  void Consume(MarkerKind kind, const Marker& marker) override;
  std::vector<std::string> TakeWarnings() override;

  bool Has(MarkerKind kind) const { return markers_.count(kind) > 0; }
  int consumed() const { return consumed_; }

 private:
  std::map<MarkerKind, Marker> markers_;
  std::vector<std::string> warnings_;
  int consumed_ = 0;
};

}  // namespace gateway

#endif  // GATEWAY_STOP_STOP_CONTEXT_TESTING_H_
