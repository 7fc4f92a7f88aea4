// See workers.h.
#include "gateway/dataplane/workers.h"

#include <fcntl.h>

#include <chrono>
#include <future>
#include <memory>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace gateway {

Workers::Workers(Telemetry* telemetry, int count, AccessLog* access_log) {
  CHECK_GE(count, 1);
  for (int i = 0; i < count; ++i) {
    Proxy::Options options;
    options.shared_listeners = count > 1;
    options.worker_stats = telemetry->StatsForWorker(i);
    options.access_log = access_log;
    proxies_.push_back(std::make_unique<Proxy>(telemetry, options));
  }
}

Workers::~Workers() {
  quit_.store(true);
  for (size_t i = 1; i < proxies_.size(); ++i) proxies_[i]->Post([] {});
  for (std::thread& thread : threads_) thread.join();
}

void Workers::Start() {
  CHECK(!started_);
  started_ = true;
  for (size_t i = 1; i < proxies_.size(); ++i) {
    Proxy* proxy = proxies_[i].get();
    threads_.emplace_back([this, proxy] {
      proxy->RunUntil([this] { return quit_.load(); }, absl::InfiniteFuture(),
                      absl::Milliseconds(250));
    });
  }
}

bool Workers::RunOn(int index, std::function<void(Proxy*)> task) {
  Proxy* proxy = proxies_[static_cast<size_t>(index)].get();
  if (index == 0 || !started_) {
    task(proxy);
    return true;
  }
  // The task owns everything it touches: a worker that does not answer in
  // time may still run it later.
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> answered = done->get_future();
  proxy->Post([task = std::move(task), proxy, done] {
    task(proxy);
    done->set_value();
  });
  if (answered.wait_for(std::chrono::seconds(5)) == std::future_status::ready) return true;
  LOG(ERROR) << "worker " << index << " did not answer within 5s (wedged?)";
  return false;
}

absl::Status Workers::SetRoutes(const std::vector<Route>& routes,
                                std::map<std::string, UniqueFd>* inherited) {
  absl::Status status = proxies_[0]->SetRoutes(routes, inherited);
  if (!status.ok()) return status;
  absl::Status result = absl::OkStatus();
  for (int i = 1; i < count(); ++i) {
    // Duplicates of the sockets worker 0 now listens on; a worker keeps its
    // own descriptor for an address it already listens on, and the unused
    // duplicates are closed when `shared` goes.
    std::map<std::string, UniqueFd> shared;
    for (const auto& [address, fd] : proxies_[0]->ListenerFds()) {
      UniqueFd copy(fcntl(fd, F_DUPFD_CLOEXEC, 0));
      if (!copy.valid()) {
        return ErrnoStatus(errno, absl::StrCat("worker ", i, ": duplicating the listener of ",
                                               address));
      }
      shared[address] = std::move(copy);
    }
    auto worker_status = std::make_shared<absl::Status>(
        absl::DeadlineExceededError(absl::StrCat("worker ", i, " did not answer within 5s")));
    auto copies = std::make_shared<std::map<std::string, UniqueFd>>(std::move(shared));
    // The task runs on the worker's thread and writes only what it owns.
    RunOn(i, [routes, copies, worker_status](Proxy* proxy) {
      *worker_status = proxy->SetRoutes(routes, copies.get());
    });
    if (!worker_status->ok()) {
      LOG(ERROR) << "worker " << i << " keeps its previous routes: " << worker_status->message();
      if (result.ok()) result = *worker_status;
    }
  }
  return result;
}

void Workers::StopAccepting() {
  for (int i = 0; i < count(); ++i) RunOn(i, [](Proxy* proxy) { proxy->StopAccepting(); });
}

int64_t Workers::CloseAllConnections() {
  auto closed = std::make_shared<std::atomic<int64_t>>(0);
  for (int i = 0; i < count(); ++i) {
    RunOn(i, [closed](Proxy* proxy) { closed->fetch_add(proxy->CloseAllConnections()); });
  }
  return closed->load();
}

std::optional<int> Workers::WedgedWorker(absl::Duration limit) const {
  absl::Time now = absl::Now();
  for (int i = 1; i < count(); ++i) {
    if (now - proxies_[static_cast<size_t>(i)]->last_iteration() > limit) return i;
  }
  return std::nullopt;
}

int64_t Workers::active_connections() const {
  int64_t active = 0;
  for (const auto& proxy : proxies_) active += proxy->active_connections();
  return active;
}

absl::Time Workers::oldest_iteration() const {
  absl::Time oldest = absl::InfiniteFuture();
  for (const auto& proxy : proxies_) oldest = std::min(oldest, proxy->last_iteration());
  return oldest;
}

}  // namespace gateway
