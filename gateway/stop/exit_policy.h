// The exit policy: which exit status each stop class gets. The supervisor
// acts on this number alone (Restart=on-failure restarts on non-zero).
#ifndef GATEWAY_STOP_EXIT_POLICY_H_
#define GATEWAY_STOP_EXIT_POLICY_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/stop/stop_context.h"

namespace gateway {

// Exit statuses outside the policy table, fixed and documented.
inline constexpr int kExitConfigError = 78;   // EX_CONFIG: do not restart
inline constexpr int kExitTemporary = 75;     // EX_TEMPFAIL: busy port, lock held

class ExitPolicy {
 public:
  // takeover=0, planned=0, unexpected=1.
  ExitPolicy();
  // Parses "unexpected=1,planned=0": each entry overrides the default for
  // one class. Unknown classes, codes outside 0-255 and repeated classes are
  // errors (InvalidArgument).
  static absl::StatusOr<ExitPolicy> Parse(const std::string& text);

  int ExitCodeFor(StopClass stop_class) const;
  std::string ToString() const;  // "takeover=0,planned=0,unexpected=1"

 private:
  std::map<StopClass, int> codes_;
};

}  // namespace gateway

#endif  // GATEWAY_STOP_EXIT_POLICY_H_
