// Signal table and masks; see signals.h.
#include "gateway/base/signals.h"

#include <pthread.h>

namespace gateway {

SignalAction ActionFor(int signo) {
  for (const SignalMeaning& s : kSignalTable) {
    if (s.signo == signo) return s.action;
  }
  return SignalAction::kIgnore;
}

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (const SignalMeaning& s : kSignalTable) sigaddset(&set, s.signo);
  return set;
}

void BlockHandledSignals() {
  sigset_t set = HandledSignals();
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void ResetSignalsForExec() {
  for (int signo = 1; signo < NSIG; ++signo) {
    if (signo != SIGKILL && signo != SIGSTOP) signal(signo, SIG_DFL);
  }
  sigset_t empty;
  sigemptyset(&empty);
  pthread_sigmask(SIG_SETMASK, &empty, nullptr);
}

}  // namespace gateway
