// libFuzzer target for the admin HTTP server (SPEC 3): each input is sent
// as raw request bytes to the real AdminServer (libmicrohttpd plus our
// handler and routing, the production code path) on a loopback port, and
// the reply is read until the server closes or goes quiet (libmicrohttpd
// keeps an incomplete request open until its 10 s connection timeout, even
// after the client's EOF, so waiting for that would make fuzzing crawl).
// Every reply must be an HTTP response or nothing; the server must keep
// answering afterwards.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gateway/ops/admin_server.h"
#include "gateway/base/net.h"
#include "gateway/dataplane/routes.h"
#include "gateway/dataplane/telemetry.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

struct Server {
  std::unique_ptr<gateway::Telemetry> telemetry;
  std::unique_ptr<gateway::AdminServer> admin;
  gateway::SocketAddress address;
};

Server& TheServer() {
  static Server* server = [] {
    auto* s = new Server;
    gateway::Telemetry::Identity identity;
    identity.pid = getpid();
    identity.started_at = absl::Now();
    identity.state_dir = "/nonexistent-fuzz";
    identity.detectors = {"takeover_marker", "interactive"};
    s->telemetry = std::make_unique<gateway::Telemetry>(identity);
    s->telemetry->SetRoutes(*gateway::ParseRouteFlag("127.0.0.1:1=127.0.0.1:2"));
    s->telemetry->SetPhase(gateway::Phase::kServing);
    absl::StatusOr<gateway::UniqueFd> listener =
        gateway::BindListener(*gateway::SocketAddress::Parse("127.0.0.1:0"));
    Check(listener.ok());
    s->address = *gateway::SocketAddress::OfSocket(listener->get());
    absl::StatusOr<std::unique_ptr<gateway::AdminServer>> admin =
        gateway::AdminServer::Start(std::move(*listener), s->telemetry.get());
    Check(admin.ok());
    s->admin = std::move(*admin);
    return s;
  }();
  return *server;
}

// Sends `request`, half-closes, returns what the server answers until it
// closes or sends nothing for `quiet`.
std::string Exchange(const std::string& request, timeval quiet = {0, 10000}) {
  const Server& server = TheServer();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Check(fd >= 0);
  timeval send_timeout = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof quiet);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  // The server may hold its slots briefly (incomplete requests until its
  // 3 s idle timeout); it must accept again well within that bound.
  bool connected = false;
  for (int attempt = 0; attempt < 50 && !connected; ++attempt) {
    connected = connect(fd, server.address.get(), server.address.length) == 0;
    if (!connected) {
      close(fd);
      usleep(100 * 1000);
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      Check(fd >= 0);
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof quiet);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    }
  }
  Check(connected);
  size_t sent = 0;
  while (sent < request.size()) {  // bounded: each send makes progress or ends the loop
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early on a bad request
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string reply;
  char buffer[4096];
  for (int reads = 0; reads < 1024; ++reads) {  // replies are far below 4 MiB
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  // Reset, not FIN: libmicrohttpd keeps a half-closed connection with an
  // incomplete request for its whole 10 s timeout (see docs/reliability.md),
  // and 64 of those would starve the server.
  linger reset = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  close(fd);
  return reply;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string reply = Exchange(std::string(reinterpret_cast<const char*>(data), size));
  Check(reply.empty() || reply.rfind("HTTP/1.", 0) == 0);
  // A hostile request must not wedge the server for the next client.
  static int inputs = 0;
  if (++inputs % 512 == 0) {
    std::string health = Exchange("GET /healthz HTTP/1.0\r\n\r\n", {5, 0});
    if (health.rfind("HTTP/1.1 200 ", 0) != 0 && health.rfind("HTTP/1.0 200 ", 0) != 0) {
      std::fprintf(stderr, "admin server stopped answering /healthz: '%s'\n", health.c_str());
      std::abort();
    }
  }
  return 0;
}
