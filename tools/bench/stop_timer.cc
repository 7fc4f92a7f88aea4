// stop_timer: measures how long an idle server takes to exit after SIGTERM,
// and its idle resident memory. Each run starts the command fresh as a
// child, waits until it listens on --port (read from /proc/net/tcp{,6},
// without connecting, so the server stays idle), lets it settle, reads
// VmRSS from /proc/PID/status, sends SIGTERM and times kill() → reaped by
// waitpid(). Prints one key=value line: median, p99 (nearest rank) and max
// of the stop times, and the median idle RSS.
//   stop_timer --runs=30 --port=8080 -- bazel-bin/gateway/gateway --route=...
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "gflags/gflags.h"
#include "tools/bench/loopback.h"

DEFINE_int32(runs, 30, "How many fresh starts to time");
DEFINE_int32(port, 0, "The server is ready once something listens on this TCP port");
DEFINE_int32(settle_ms, 300, "Idle time between ready and the measurement");
DEFINE_int32(ready_timeout_ms, 10000, "Give up when the server is not listening by then");
DEFINE_int32(stop_timeout_ms, 10000, "SIGKILL a server still running this long after SIGTERM");

namespace gateway::bench {
namespace {

constexpr char kTool[] = "stop_timer";

// True when /proc/net/tcp or tcp6 shows a socket in LISTEN on `port`.
bool Listening(int port) {
  std::string local = absl::StrFormat(":%04X ", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local_address, remote_address, state;
      fields >> slot >> local_address >> remote_address >> state;
      if (state == "0A" && (local_address + " ").find(local) != std::string::npos) return true;
    }
  }
  return false;
}

int64_t VmRssKb(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kb = 0;
      std::istringstream(line.substr(6)) >> kb;
      return kb;
    }
  }
  return -1;
}

pid_t Spawn(char** argv) {
  pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[0], argv);
    std::fprintf(stderr, "%s: cannot run %s\n", kTool, argv[0]);
    _exit(127);
  }
  return pid;
}

// Polls waitpid until `pid` is reaped or `timeout_ns` passes.
bool ReapWithin(pid_t pid, int64_t timeout_ns, int* status) {
  int64_t deadline = NowNs() + timeout_ns;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (NowNs() > deadline) return false;
    usleep(100);
  }
}

struct Run {
  double stop_ms = 0;
  int64_t rss_kb = 0;
  int exit_code = 0;
};

// One fresh start, idle settle, SIGTERM, reap. False on failure (said why).
bool TimeOneStop(char** argv, Run* run) {
  pid_t pid = Spawn(argv);
  int status = 0;
  int64_t ready_deadline = NowNs() + int64_t{FLAGS_ready_timeout_ms} * 1000000;
  while (!Listening(FLAGS_port)) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      std::fprintf(stderr, "%s: %s exited before listening on port %d\n", kTool, argv[0],
                   FLAGS_port);
      return false;
    }
    if (NowNs() > ready_deadline) {
      std::fprintf(stderr, "%s: %s not listening on port %d after %d ms\n", kTool, argv[0],
                   FLAGS_port, FLAGS_ready_timeout_ms);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    usleep(1000);
  }
  usleep(static_cast<useconds_t>(FLAGS_settle_ms) * 1000);
  run->rss_kb = VmRssKb(pid);
  int64_t t0 = NowNs();
  kill(pid, SIGTERM);
  // A blocking waitpid returns as soon as the child is reaped.
  bool reaped = ReapWithin(pid, int64_t{FLAGS_stop_timeout_ms} * 1000000, &status);
  run->stop_ms = (NowNs() - t0) / 1e6;
  if (!reaped) {
    std::fprintf(stderr, "%s: %s still running %d ms after SIGTERM; killed\n", kTool, argv[0],
                 FLAGS_stop_timeout_ms);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return false;
  }
  run->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // The port must be free again before the next fresh start.
  int64_t free_deadline = NowNs() + int64_t{FLAGS_ready_timeout_ms} * 1000000;
  while (Listening(FLAGS_port) && NowNs() < free_deadline) usleep(1000);
  return true;
}

double NearestRank(std::vector<double> values, double quantile) {
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(quantile * values.size()));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

int Main(int argc, char** argv) {
  CheckRange(kTool, "runs", FLAGS_runs, 1, 1000);
  CheckRange(kTool, "port", FLAGS_port, 1, 65535);
  CheckRange(kTool, "settle_ms", FLAGS_settle_ms, 0, 60000);
  if (argc < 2) DieUsage(kTool, "the server's command goes after --");
  std::vector<double> stop_ms;
  std::vector<double> rss_kb;
  std::string exit_codes;
  for (int i = 0; i < FLAGS_runs; ++i) {
    Run run;
    if (!TimeOneStop(argv + 1, &run)) return 1;
    stop_ms.push_back(run.stop_ms);
    rss_kb.push_back(static_cast<double>(run.rss_kb));
    if (exit_codes.find(absl::StrFormat(",%d,", run.exit_code)) == std::string::npos) {
      exit_codes += absl::StrFormat(",%d,", run.exit_code);
    }
  }
  exit_codes.erase(std::unique(exit_codes.begin(), exit_codes.end()), exit_codes.end());
  std::printf("runs=%d median_ms=%.2f p99_ms=%.2f max_ms=%.2f rss_kb=%.0f exit_codes=%s\n",
              FLAGS_runs, NearestRank(stop_ms, 0.5), NearestRank(stop_ms, 0.99),
              NearestRank(stop_ms, 1.0), NearestRank(rss_kb, 0.5),
              exit_codes.substr(1, exit_codes.size() - 2).c_str());
  return 0;
}

}  // namespace
}  // namespace gateway::bench

int main(int argc, char** argv) {
  gflags::SetUsageMessage("stop_timer --runs=30 --port=PORT -- COMMAND [ARGS...]");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return gateway::bench::Main(argc, argv);
}
