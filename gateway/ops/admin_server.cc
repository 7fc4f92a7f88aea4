// See admin_server.h.
#include "gateway/ops/admin_server.h"

#include <microhttpd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "gateway/base/json_util.h"

namespace gateway {
namespace {

struct Reply {
  unsigned int status;
  std::string content_type;
  std::string body;
};

Reply Route(const Telemetry& telemetry, const std::string& path) {
  if (path == "/healthz") return {MHD_HTTP_OK, "text/plain", "ok\n"};
  if (path == "/readyz") {
    std::string because = telemetry.NotReadyBecause();
    if (because.empty()) return {MHD_HTTP_OK, "text/plain", "ready\n"};
    return {MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", absl::StrCat("not ready: ", because, "\n")};
  }
  if (path == "/status") {
    return {MHD_HTTP_OK, "application/json", DumpJson(telemetry.StatusJson(), 2) + "\n"};
  }
  if (path == "/metrics") {
    return {MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", telemetry.PrometheusText()};
  }
  return {MHD_HTTP_NOT_FOUND, "text/plain", "not found: try /healthz /readyz /status /metrics\n"};
}

MHD_Result Handle(const Telemetry& telemetry, MHD_Connection* connection, const char* url,
                  const char* method, size_t* upload_data_size) {
  Reply reply;
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
    reply = {MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "only GET and HEAD\n"};
  } else if (*upload_data_size != 0) {
    *upload_data_size = 0;  // ignore a body on GET
    return MHD_YES;
  } else {
    reply = Route(telemetry, url);
  }
  MHD_Response* response = MHD_create_response_from_buffer(
      reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type.c_str());
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_Result result = MHD_queue_response(connection, reply.status, response);
  MHD_destroy_response(response);
  return result;
}

int ToMilliseconds(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

constexpr absl::Duration kSweepInterval = absl::Milliseconds(250);

}  // namespace

// libmicrohttpd calls these on the server's thread.
struct AdminCallbacks {
  static void OnConnection(void* cls, MHD_Connection* connection, void** /*socket_context*/,
                           MHD_ConnectionNotificationCode code) {
    auto* server = static_cast<AdminServer*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) server->ConnectionStarted(connection);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) server->ConnectionClosed(connection);
  }
  static void OnRequestDone(void* cls, MHD_Connection* connection, void** /*con_cls*/,
                            MHD_RequestTerminationCode /*code*/) {
    static_cast<AdminServer*>(cls)->RequestDone(connection);
  }
  static MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url,
                              const char* method, const char* /*version*/,
                              const char* /*upload_data*/, size_t* upload_data_size,
                              void** /*con_cls*/) {
    auto* server = static_cast<AdminServer*>(cls);
    server->RequestArrived(connection);
    return Handle(*server->telemetry_, connection, url, method, upload_data_size);
  }
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(UniqueFd listener,
                                                                const Telemetry* telemetry) {
  std::unique_ptr<AdminServer> server(new AdminServer(telemetry));
  server->wake_fd_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!server->wake_fd_.valid()) return ErrnoStatus(errno, "admin server: eventfd");
  server->listen_fd_ = listener.get();
  AdminServer* raw = server.get();
  // External polling: Serve() runs libmicrohttpd on our own thread, so the
  // deadlines below are checked on the thread that owns the connections.
  server->daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL, 0, nullptr, nullptr, &AdminCallbacks::OnRequest, raw,
      MHD_OPTION_LISTEN_SOCKET, listener.get(),
      MHD_OPTION_CONNECTION_LIMIT, kAdminConnectionLimit,
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, kAdminConnectionsPerAddress,
      // An idle timeout: a connection that sends nothing at all.
      MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned>(absl::ToInt64Seconds(kAdminIdleTimeout)),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(32 * 1024),
      MHD_OPTION_NOTIFY_CONNECTION, &AdminCallbacks::OnConnection, raw,
      MHD_OPTION_NOTIFY_COMPLETED, &AdminCallbacks::OnRequestDone, raw, MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return absl::InternalError("admin server: libmicrohttpd failed to start");
  }
  listener.Release();  // owned by the daemon now
  server->thread_ = std::thread([raw] { raw->Serve(); });
  return server;
}

void AdminServer::Serve() {
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  const int epoll_fd = info != nullptr ? info->epoll_fd : -1;
  while (!stopping_.load()) {
    int wait_ms = ToMilliseconds(kSweepInterval);
    MHD_UNSIGNED_LONG_LONG mhd_ms = 0;
    if (MHD_get_timeout(daemon_, &mhd_ms) == MHD_YES) {
      wait_ms = static_cast<int>(std::min<MHD_UNSIGNED_LONG_LONG>(mhd_ms, wait_ms));
    }
    pollfd fds[2] = {{epoll_fd, POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    (void)poll(fds, 2, wait_ms);
    if (fds[1].revents != 0) {
      uint64_t count;
      (void)!read(wake_fd_.get(), &count, sizeof count);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (quiesce_requested_ && !quiesced_) {
        quiesced_fd_ = MHD_quiesce_daemon(daemon_);
        quiesced_ = true;
        quiesced_cv_.notify_all();
      }
    }
    MHD_run(daemon_);
    Sweep();
  }
}

void AdminServer::ConnectionStarted(MHD_Connection* connection) {
  absl::Time now = absl::Now();
  Tracked& tracked = tracked_[connection];
  tracked.accepted_at = now;
  tracked.request_started_at = now;
  KeepProbeReserve();
}

void AdminServer::ConnectionClosed(MHD_Connection* connection) { tracked_.erase(connection); }

void AdminServer::RequestArrived(MHD_Connection* connection) {
  auto it = tracked_.find(connection);
  if (it != tracked_.end()) it->second.request_complete = true;
}

void AdminServer::RequestDone(MHD_Connection* connection) {
  // A kept-alive connection's next request has its own deadline.
  auto it = tracked_.find(connection);
  if (it == tracked_.end()) return;
  it->second.request_complete = false;
  it->second.request_started_at = absl::Now();
}

void AdminServer::Evict(MHD_Connection* connection, Tracked& tracked) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info == nullptr) return;
  // libmicrohttpd sees the end of the stream and closes the connection
  // itself (its descriptor is its own to close).
  shutdown(info->connect_fd, SHUT_RDWR);
  tracked.closing = true;
}

void AdminServer::KeepProbeReserve() {
  size_t open = 0;
  for (const auto& [connection, tracked] : tracked_) open += tracked.closing ? 0 : 1;
  while (open > kAdminConnectionLimit - kAdminProbeReserve) {
    // The connection whose request has been incomplete longest goes.
    auto oldest = tracked_.end();
    for (auto it = tracked_.begin(); it != tracked_.end(); ++it) {
      if (it->second.closing || it->second.request_complete) continue;
      if (oldest == tracked_.end() ||
          it->second.request_started_at < oldest->second.request_started_at) {
        oldest = it;
      }
    }
    if (oldest == tracked_.end()) break;  // all are being answered
    Evict(oldest->first, oldest->second);
    ++evicted_for_room_;
    --open;
  }
  LogEvictions();
}

void AdminServer::Sweep() {
  absl::Time now = absl::Now();
  for (auto& [connection, tracked] : tracked_) {
    if (tracked.closing) continue;
    if (!tracked.request_complete && now - tracked.request_started_at > kAdminRequestTimeout) {
      Evict(connection, tracked);
      ++evicted_slow_;
    } else if (now - tracked.accepted_at > kAdminConnectionLifetime) {
      Evict(connection, tracked);
      ++evicted_old_;
    }
  }
  LogEvictions();
}

void AdminServer::LogEvictions() {
  if (evicted_slow_ + evicted_for_room_ + evicted_old_ == 0) return;
  absl::Time now = absl::Now();
  if (now - last_eviction_log_ < absl::Seconds(10)) return;  // one line per 10 s at most
  last_eviction_log_ = now;
  LOG(WARNING) << "admin server: closed " << evicted_slow_
               << " connection(s) whose request was not complete within "
               << absl::FormatDuration(kAdminRequestTimeout) << ", " << evicted_for_room_
               << " to keep room for probes, " << evicted_old_ << " open longer than "
               << absl::FormatDuration(kAdminConnectionLifetime);
  evicted_slow_ = evicted_for_room_ = evicted_old_ = 0;
}

void AdminServer::StopAccepting() {
  if (daemon_ == nullptr || listen_fd_ < 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  quiesce_requested_ = true;
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
  // The serving thread quiesces at once; bounded in case it is stuck.
  quiesced_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return quiesced_; });
  listen_fd_ = -1;
}

AdminServer::~AdminServer() {
  if (thread_.joinable()) {
    stopping_ = true;
    uint64_t one = 1;
    (void)!write(wake_fd_.get(), &one, sizeof one);
    thread_.join();
  }
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  if (quiesced_fd_ >= 0) close(quiesced_fd_);
}

}  // namespace gateway
