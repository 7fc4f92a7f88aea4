// The signals the gateway acts on and what each one means (one table, as in
// nginx). They are blocked in main() before any thread exists and read by
// one thread with sigwaitinfo (stop_controller.h), so no logic ever runs in
// an asynchronous handler and the full siginfo_t is known.
#ifndef GATEWAY_BASE_SIGNALS_H_
#define GATEWAY_BASE_SIGNALS_H_

#include <signal.h>

namespace gateway {

enum class SignalAction {
  kStop,              // classify, drain, exit (SIGTERM, SIGINT)
  kStopWithoutDrain,  // classify, exit at once (SIGQUIT)
  kReload,            // re-read --config (SIGHUP); not a stop
  kReopenLogs,        // reopen --access_log (SIGUSR1, logrotate's convention); not a stop
  kIgnore,
};

struct SignalMeaning {
  int signo;
  SignalAction action;
  const char* meaning;
};

inline constexpr SignalMeaning kSignalTable[] = {
    {SIGTERM, SignalAction::kStop, "stop: classify, drain, exit"},
    {SIGINT, SignalAction::kStop, "stop (Ctrl-C): classify, drain, exit"},
    {SIGQUIT, SignalAction::kStopWithoutDrain, "stop at once: classify, skip the drain, exit"},
    {SIGHUP, SignalAction::kReload, "reload routes from --config"},
    {SIGUSR1, SignalAction::kReopenLogs, "reopen the access log (after logrotate)"},
};

SignalAction ActionFor(int signo);

// The set of signals in kSignalTable.
sigset_t HandledSignals();

// Blocks the handled signals (and SIGPIPE, which the relay turns into
// EPIPE) in the calling thread. Call it first thing in main(): threads
// inherit the mask, and one created before this would take SIGTERM with
// the default action or a crash handler.
void BlockHandledSignals();

// Restores an empty signal mask and default dispositions; for a child
// between fork() and exec(), since both survive exec.
void ResetSignalsForExec();

}  // namespace gateway

#endif  // GATEWAY_BASE_SIGNALS_H_
