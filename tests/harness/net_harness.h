// Network helpers for black-box tests of the data plane: free loopback
// ports, an echo upstream that runs in the test process, blocking clients
// with timeouts, and a tiny HTTP GET for the admin server. Loopback only.
#ifndef TESTS_HARNESS_NET_HARNESS_H_
#define TESTS_HARNESS_NET_HARNESS_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace gateway::testing {

// A port on 127.0.0.1 (or ::1) that was free a moment ago.
int FreePort(bool ipv6 = false);
// `n` free ports, all different (FreePort twice may give the same one).
std::vector<int> FreePorts(int n, bool ipv6 = false);
// A free port below the kernel's ephemeral range, for a server a test
// stops and restarts on the same port: while it is down, no outgoing
// connection can take the port as its source port (a client socket's
// TIME_WAIT there would make the restart's bind fail).
int FreePortOutsideEphemeralRange(bool ipv6 = false);

// Echoes every byte back; after the client's EOF, finishes echoing, then
// half-closes its side. Optionally first sends `greeting`.
class EchoServer {
 public:
  // `port` 0: any free one; else that port (a server restarted where an
  // earlier one listened).
  explicit EchoServer(bool ipv6 = false, std::string greeting = "", int port = 0);
  ~EchoServer();
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  void Serve(int fd);
  int listen_fd_ = -1;
  int port_ = 0;
  std::string greeting_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  // One thread per connection; finished ones are joined as new ones come,
  // so 100k short connections do not pile up 100k unjoined threads.
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void JoinFinishedWorkers();
  std::vector<Worker> workers_;  // the acceptor's, then the destructor's
};

// A blocking TCP client socket with send/receive timeouts; -1 on failure.
int ConnectTo(int port, bool ipv6 = false, absl::Duration timeout = absl::Seconds(10));
// Like ConnectTo(port) on 127.0.0.1, from `source` (any 127/8 address), so
// a test can be many client hosts; -1 on failure.
int ConnectFrom(const std::string& source, int port, absl::Duration timeout = absl::Seconds(5));
bool SendAll(int fd, const std::string& data);
// Reads exactly `n` bytes (less on EOF, error or timeout).
std::string RecvExactly(int fd, size_t n);
// Reads until EOF; `eof` reports whether EOF (not an error/timeout) ended it.
std::string RecvUntilEof(int fd, bool* eof = nullptr);
std::string RandomBytes(size_t n, unsigned seed);

struct HttpReply {
  int status = 0;  // 0: no answer
  std::string body;
};
HttpReply HttpGet(const std::string& address, const std::string& path);

}  // namespace gateway::testing

#endif  // TESTS_HARNESS_NET_HARNESS_H_
