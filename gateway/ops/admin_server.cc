// See admin_server.h.
#include "gateway/ops/admin_server.h"

#include <microhttpd.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
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
    if (telemetry.Ready()) return {MHD_HTTP_OK, "text/plain", "ready\n"};
    return {MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
            absl::StrCat("not ready: ", PhaseName(telemetry.phase()), "\n")};
  }
  if (path == "/status") {
    return {MHD_HTTP_OK, "application/json", DumpJson(telemetry.StatusJson(), 2) + "\n"};
  }
  if (path == "/metrics") {
    return {MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", telemetry.PrometheusText()};
  }
  return {MHD_HTTP_NOT_FOUND, "text/plain", "not found: try /healthz /readyz /status /metrics\n"};
}

MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url, const char* method,
                  const char* /*version*/, const char* /*upload_data*/,
                  size_t* upload_data_size, void** /*con_cls*/) {
  const auto* telemetry = static_cast<const Telemetry*>(cls);
  Reply reply;
  if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
    reply = {MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "only GET and HEAD\n"};
  } else if (*upload_data_size != 0) {
    *upload_data_size = 0;  // ignore a body on GET
    return MHD_YES;
  } else {
    reply = Route(*telemetry, url);
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

}  // namespace

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(UniqueFd listener,
                                                                const Telemetry* telemetry) {
  std::unique_ptr<AdminServer> server(new AdminServer(telemetry));
  server->listen_fd_ = listener.get();
  server->daemon_ = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC, 0, nullptr, nullptr,
      &Handle, const_cast<Telemetry*>(telemetry), MHD_OPTION_LISTEN_SOCKET, listener.get(),
      // Requests are tiny and answered at once: a short idle timeout bounds
      // how long half-open or incomplete requests can hold slots.
      MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_CONNECTION_TIMEOUT, 3u,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(32 * 1024), MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    return absl::InternalError("admin server: libmicrohttpd failed to start");
  }
  listener.Release();  // owned by the daemon now
  return server;
}

void AdminServer::StopAccepting() {
  if (daemon_ == nullptr || listen_fd_ < 0) return;
  // MHD requires the quiesced socket to stay open until MHD_stop_daemon.
  quiesced_fd_ = MHD_quiesce_daemon(daemon_);
  listen_fd_ = -1;
}

AdminServer::~AdminServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  if (quiesced_fd_ >= 0) close(quiesced_fd_);
}

}  // namespace gateway
