// SIGHUP reloads off the event loop; see route_reloader.h.
#include "gateway/dataplane/route_reloader.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "absl/time/clock.h"
#include "glog/logging.h"

namespace gateway {

RouteReloader::RouteReloader(Options options)
    : options_(std::move(options)), loaded_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  PCHECK(loaded_fd_.valid()) << "eventfd";
  options_.proxy->Watch(loaded_fd_.get(), [this] { InstallLoaded(); });
  std::thread([this] { ReadRequested(); }).detach();
}

void RouteReloader::Request() {
  if (options_.config_path.empty()) {
    LOG(WARNING) << "SIGHUP: nothing to reload (no --config)";
    return;
  }
  if (options_.stopping()) {
    RefuseStopping("");
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  requested_ = true;
  cv_.notify_one();
}

void RouteReloader::RefuseStopping(absl::string_view when) {
  options_.telemetry->reloads_refused_stopping.fetch_add(1);
  LOG(WARNING) << "SIGHUP: refused" << when
               << ": the gateway is stopping; the routes stay as they are and no listener is "
                  "re-opened";
}

void RouteReloader::ReadRequested() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return requested_; });
      requested_ = false;
    }
    LOG(INFO) << "SIGHUP: reading " << options_.config_path;
    if (options_.delay_for_test > absl::ZeroDuration()) absl::SleepFor(options_.delay_for_test);
    absl::StatusOr<std::vector<Route>> routes = options_.load();
    if (!routes.ok()) {
      options_.telemetry->reloads_failed.fetch_add(1);
      LOG(ERROR) << "SIGHUP: keeping the current routes: " << routes.status().message();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      loaded_ = *std::move(routes);  // a newer read replaces one not yet installed
    }
    uint64_t one = 1;
    (void)!write(loaded_fd_.get(), &one, sizeof one);
  }
}

void RouteReloader::InstallLoaded() {
  uint64_t count;
  (void)!read(loaded_fd_.get(), &count, sizeof count);
  std::optional<std::vector<Route>> routes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    routes.swap(loaded_);
  }
  if (!routes) return;
  if (options_.stopping()) {
    RefuseStopping(" (read while the stop came)");
    return;
  }
  absl::Status status = options_.install(*routes);
  if (!status.ok()) {
    options_.telemetry->reloads_failed.fetch_add(1);
    LOG(ERROR) << "SIGHUP: keeping the current routes: " << status.message();
    return;
  }
  options_.telemetry->reloads_ok.fetch_add(1);
  LOG(INFO) << "SIGHUP: " << routes->size() << " route(s) in force from "
            << options_.config_path;
}

}  // namespace gateway
