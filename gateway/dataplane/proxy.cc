// See proxy.h. The relay rules, learned the hard way:
//  - splice(socket → pipe) with SPLICE_F_NONBLOCK returns EAGAIN both for
//    "socket empty" and "pipe full". A direction therefore splices into its
//    pipe only when the pipe is empty; then EAGAIN can only mean "socket
//    empty", and edge-triggered epoll never stalls on a full pipe.
//  - Data and FIN can arrive in one wake-up: every wake-up pumps until
//    EAGAIN or end of stream, so the FIN is never missed.
//  - A pipe is held only while it has bytes in flight and goes back to a
//    small pool afterwards, so idle connections hold no pipes; this keeps
//    unprivileged users inside fs.pipe-user-pages-soft.
#include "gateway/dataplane/proxy.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "gateway/base/net.h"
#include "gateway/dataplane/access_log.h"
#include "gateway/dataplane/proxy_protocol.h"
#include "gateway/dataplane/telemetry.h"

namespace gateway {
namespace {

// Large enough that bulk transfers need few system calls; the pool bounds
// how many exist.
constexpr int kPipeBytes = 256 * 1024;
constexpr size_t kPipePoolMax = 64;
constexpr absl::Duration kAcceptPause = absl::Milliseconds(100);
constexpr int kMaxEvents = 256;
// Accepts per wake-up on a listener shared with other workers: the rest of
// a burst stays queued for the next wake-up, which another idle worker may
// take (EPOLLEXCLUSIVE wakes one waiter per arrival).
constexpr int kSharedAcceptBatch = 16;

class FdWatcher : public Watcher {
 public:
  explicit FdWatcher(std::function<void()> on_readable) : on_readable_(std::move(on_readable)) {}
  void OnEvents(uint32_t) override { on_readable_(); }

 private:
  std::function<void()> on_readable_;
};

class EventsWatcher : public Watcher {
 public:
  explicit EventsWatcher(std::function<void(uint32_t)> on_events)
      : on_events_(std::move(on_events)) {}
  void OnEvents(uint32_t events) override { on_events_(events); }

 private:
  std::function<void(uint32_t)> on_events_;
};

}  // namespace

class Proxy::Listener : public Watcher {
 public:
  Listener(Proxy* proxy, Route route, UniqueFd fd, RouteStats* stats, UpstreamPool* pool)
      : proxy_(proxy), route_(std::move(route)), fd_(std::move(fd)), stats_(stats), pool_(pool) {
    // Linux copies TCP_NODELAY from a listening socket to the sockets it
    // accepts: set once here, it saves a system call per connection.
    int one = 1;
    nodelay_inherited_ =
        fd_.valid() && setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
  }
  void OnEvents(uint32_t) override { proxy_->AcceptFrom(this); }

  Proxy* proxy_;
  Route route_;
  UniqueFd fd_;
  RouteStats* stats_;
  UpstreamPool* pool_;
  bool registered_ = false;  // in the epoll set (not while accepts pause)
  bool nodelay_inherited_ = false;  // accepted sockets have TCP_NODELAY already
};

void Proxy::ArmListener(Listener* listener) {
  if (listener->registered_ || !listener->fd_.valid()) return;
  Register(listener->fd_.get(),
           options_.shared_listeners ? EPOLLIN | EPOLLEXCLUSIVE : EPOLLIN | EPOLLET, listener);
  listener->registered_ = true;
}

void Proxy::DisarmListener(Listener* listener) {
  if (!listener->registered_) return;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listener->fd_.get(), nullptr);
  listener->registered_ = false;
}

void Proxy::PauseAccepting(absl::Time until) {
  accept_paused_until_ = until;
  // A level-triggered (shared) listener would report its queue at every
  // wake-up and spin the loop: out of the epoll set until the pause ends.
  if (options_.shared_listeners) {
    for (auto& listener : listeners_) DisarmListener(listener.get());
  }
}

class Proxy::Connection {
 public:
  // One direction of the relay: bytes from `src` to `dst` through `pipe`.
  struct Direction {
    std::optional<Pipe> pipe;
    size_t in_pipe = 0;
    bool eof = false;       // read end of stream from src
    bool shut = false;      // propagated it with shutdown(dst, SHUT_WR)
    std::atomic<int64_t>* bytes = nullptr;
    int64_t total = 0;      // this connection's, for the access log
  };
  enum class Pumped { kWaiting, kDone, kError };

  class Side : public Watcher {
   public:
    Side(Connection* connection, bool upstream) : connection_(connection), upstream_(upstream) {}
    void OnEvents(uint32_t events) override { connection_->OnEvents(events, upstream_); }

   private:
    Connection* connection_;
    bool upstream_;
  };

  Connection(Proxy* proxy, const Route& route, RouteStats* stats, UpstreamPool* pool,
             UpstreamState* upstream_state, const SocketAddress& client_address,
             const SocketAddress& destination, int retries_so_far, UniqueFd client,
             UniqueFd upstream)
      : proxy_(proxy),
        stats_(stats),
        pool_(pool),
        upstream_state_(upstream_state),
        client_address_(client_address),
        destination_(destination),
        send_proxy_(route.send_proxy),
        retries_(retries_so_far),
        start_(absl::Now()),
        connect_timeout_(route.connect_timeout),
        retries_left_(route.connect_retries),
        idle_timeout_(route.idle_timeout),
        last_activity_(absl::Now()),
        connect_deadline_(absl::Now() + route.connect_timeout),
        client_(std::move(client)),
        upstream_(std::move(upstream)),
        client_side_(this, false),
        upstream_side_(this, true) {
    to_upstream_.bytes = &stats->bytes_to_upstream;
    to_client_.bytes = &stats->bytes_to_client;
  }

  void Start() {
    // One registration per side for the life of the connection.
    proxy_->Register(client_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &client_side_);
    proxy_->Register(upstream_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &upstream_side_);
  }

  void OnEvents(uint32_t events, bool upstream_side) {
    if (closed_) return;
    if (!connected_) {
      if (!upstream_side) return;  // client data waits until the upstream is there
      // A connect that failed reports EPOLLERR (with EPOLLHUP); only then is
      // SO_ERROR worth a system call (one of about 20 per short connection).
      int error = 0;
      if (events & (EPOLLERR | EPOLLHUP)) {
        socklen_t len = sizeof error;
        getsockopt(upstream_.get(), SOL_SOCKET, SO_ERROR, &error, &len);
      }
      if (error != 0 || (events & (EPOLLERR | EPOLLHUP))) {
        stats_->upstream_connect_errors.fetch_add(1);
        const char* why = std::strerror(error ? error : ECONNREFUSED);
        VLOG(1) << "upstream connect failed: " << why;
        if (!TryAnotherUpstream(why)) {
          SetEnd("connect_failed", "upstream");
          proxy_->Close(this);
        }
        return;
      }
      if (!(events & EPOLLOUT)) return;
      connected_ = true;
      pool_->Connected(upstream_state_);
      proxy_->connect_deadlines_.erase({connect_deadline_, this});
      if (send_proxy_ != Route::SendProxy::kNone && !SendProxyHeader()) {
        SetEnd("error", "upstream");
        return proxy_->Close(this);
      }
      Pump(true, true);
      return;
    }
    // Readable side X feeds the direction out of X; writable side X drains
    // the direction into X. Errors and hang-ups go to both.
    bool readable = events & (EPOLLIN | EPOLLRDHUP);
    bool writable = events & EPOLLOUT;
    bool broken = events & (EPOLLERR | EPOLLHUP);
    bool to_upstream = broken || (upstream_side ? writable : readable);
    bool to_client = broken || (upstream_side ? readable : writable);
    Pump(to_upstream, to_client);
  }
  void ConnectTimedOut() {
    stats_->upstream_timeouts.fetch_add(1);
    if (!TryAnotherUpstream("connect timed out")) {
      SetEnd("connect_failed", "upstream");
      proxy_->Close(this);
    }
  }

  // How it ended, for the access log: the first reason given wins.
  void SetEnd(const char* ended, const char* by) {
    if (ended_ == nullptr) {
      ended_ = ended;
      ended_by_ = by;
    }
  }

  // The PROXY header, first on the fresh upstream connection: a few dozen
  // bytes into an empty socket buffer, so one send takes it all.
  bool SendProxyHeader() {
    SocketAddress destination = destination_.Get();
    if (destination.family() == AF_UNSPEC) {
      absl::StatusOr<SocketAddress> own = SocketAddress::OfSocket(client_.get());
      if (own.ok()) destination = *own;
    }
    std::string header = EncodeProxyHeader(
        send_proxy_ == Route::SendProxy::kV1 ? ProxyVersion::kV1 : ProxyVersion::kV2,
        client_address_.Get(), destination);
    ssize_t n = send(upstream_.get(), header.data(), header.size(), MSG_NOSIGNAL);
    return n == static_cast<ssize_t>(header.size());
  }

  // The connect to the current upstream failed before any byte was
  // relayed (client bytes wait in the client's socket until the upstream
  // is connected): counts it against that upstream, then connects to
  // another one while retries are left. False: give up, close the client.
  bool TryAnotherUpstream(absl::string_view why) {
    pool_->ConnectFailed(upstream_state_, why);
    while (retries_left_ > 0) {
      --retries_left_;
      UpstreamState* next = pool_->Pick(client_address_.Get(), upstream_state_);
      if (next == nullptr) return false;
      absl::StatusOr<UniqueFd> fd = StartConnect(next->address);
      if (!fd.ok()) {
        pool_->Release(next);
        pool_->ConnectFailed(next, fd.status().message());
        continue;
      }
      stats_->upstream_retries.fetch_add(1, std::memory_order_relaxed);
      ++retries_;
      pool_->Release(upstream_state_);
      upstream_state_ = next;
      proxy_->connect_deadlines_.erase({connect_deadline_, this});
      proxy_->Deregister(upstream_.get());  // see Shutdown()
      upstream_ = std::move(*fd);
      connect_deadline_ = absl::Now() + connect_timeout_;
      proxy_->connect_deadlines_.insert({connect_deadline_, this});
      proxy_->Register(upstream_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &upstream_side_);
      return true;
    }
    return false;
  }

  void Pump(bool to_upstream, bool to_client) {
    if (to_upstream && PumpDirection(to_upstream_, client_.get(), upstream_.get(), "client",
                                     "upstream") == Pumped::kError) {
      return proxy_->Close(this);
    }
    if (to_client && PumpDirection(to_client_, upstream_.get(), client_.get(), "upstream",
                                   "client") == Pumped::kError) {
      return proxy_->Close(this);
    }
    if (Finished(to_upstream_) && Finished(to_client_)) proxy_->Close(this);
  }

  static bool Finished(const Direction& d) { return d.eof && d.shut && d.in_pipe == 0; }

  // `src_name`/`dst_name` ("client", "upstream") say who ended it.
  Pumped PumpDirection(Direction& d, int src, int dst, const char* src_name,
                       const char* dst_name) {
    for (;;) {
      if (d.in_pipe > 0) {
        ssize_t n = splice(d.pipe->read_fd, nullptr, dst, nullptr, d.in_pipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d.in_pipe -= static_cast<size_t>(n);
          d.bytes->fetch_add(n, std::memory_order_relaxed);
          d.total += n;
          last_activity_ = proxy_->loop_now_;
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return Pumped::kWaiting;  // dst full: wait for EPOLLOUT
        SetEnd("error", dst_name);                              // peer reset
        return Pumped::kError;
      }
      if (d.eof) {
        if (!d.shut) {
          // When the other direction is over too, the connection closes
          // next and close(2) sends the FIN: one system call fewer.
          const Direction& other = &d == &to_upstream_ ? to_client_ : to_upstream_;
          if (!Finished(other)) shutdown(dst, SHUT_WR);
          d.shut = true;
        }
        ReleasePipe(d);
        return Pumped::kDone;
      }
      if (!d.pipe) {
        d.pipe = proxy_->AcquirePipe();
        if (!d.pipe) {  // out of descriptors: give up this one
          SetEnd("error", "gateway");
          return Pumped::kError;
        }
      }
      ssize_t n = splice(src, nullptr, d.pipe->write_fd, nullptr, kPipeBytes,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.in_pipe = static_cast<size_t>(n);
        continue;
      }
      if (n == 0) {
        d.eof = true;
        if (first_eof_ == nullptr) first_eof_ = src_name;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {  // the pipe is empty, so the socket is
        ReleasePipe(d);
        return Pumped::kWaiting;
      }
      SetEnd("error", src_name);
      return Pumped::kError;
    }
  }

  void ReleasePipe(Direction& d) {
    if (d.pipe && d.in_pipe == 0) {
      proxy_->ReleasePipe(*d.pipe);
      d.pipe.reset();
    }
  }

  // Closes both sockets; pipes with bytes still in them are discarded.
  void Shutdown() {
    closed_ = true;
    for (Direction* d : {&to_upstream_, &to_client_}) {
      if (!d->pipe) continue;
      if (d->in_pipe == 0) {
        proxy_->ReleasePipe(*d->pipe);
      } else {
        close(d->pipe->read_fd);
        close(d->pipe->write_fd);
      }
      d->pipe.reset();
    }
    // Deregister before closing, always. close(2) removes an epoll
    // registration only when no other descriptor refers to the same open
    // file description, and a child between fork and exec (a successor,
    // a --check, a plugin probe) holds copies of all of ours: the
    // registration would outlive this object and report events for freed
    // memory. A flag raised around fork() cannot close that window when
    // other workers close connections concurrently; two epoll_ctl calls
    // per connection can.
    proxy_->Deregister(client_.get());
    proxy_->Deregister(upstream_.get());
    client_.Reset();
    upstream_.Reset();
    if (proxy_->options_.access_log != nullptr) WriteAccessLog();
    pool_->Release(upstream_state_);
    stats_->active.fetch_sub(1, std::memory_order_relaxed);
    proxy_->active_count_.fetch_sub(1, std::memory_order_relaxed);
    if (proxy_->options_.worker_stats != nullptr) {
      proxy_->options_.worker_stats->active.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void WriteAccessLog() {
    AccessLogEntry entry;
    entry.start = start_;
    entry.end = absl::Now();
    entry.route = stats_->name;
    entry.client = client_address_.Get().ToString();
    entry.upstream = upstream_state_->name;  // the last one tried
    entry.bytes_from_client = to_upstream_.total;
    entry.bytes_to_client = to_client_.total;
    if (ended_ == nullptr && first_eof_ != nullptr) {
      ended_ = std::string_view(first_eof_) == "client" ? "client_closed" : "upstream_closed";
      ended_by_ = first_eof_;
    }
    entry.ended = ended_ != nullptr ? ended_ : "error";
    entry.ended_by = ended_by_ != nullptr ? ended_by_ : "gateway";
    entry.retries = retries_;
    proxy_->options_.access_log->Write(AccessLogLine(entry));
  }

  Proxy* proxy_;
  RouteStats* stats_;
  UpstreamPool* pool_;
  UpstreamState* upstream_state_;  // counted active in the pool while open
  // Compact (28 bytes each, not 128): kept for the connection's lifetime.
  const CompactAddress client_address_;
  const CompactAddress destination_;  // unset: the client socket's own
  const Route::SendProxy send_proxy_;
  int retries_;
  const absl::Time start_;
  const char* ended_ = nullptr;     // access log: how and by whom, once known
  const char* ended_by_ = nullptr;
  const char* first_eof_ = nullptr;  // "client" or "upstream": who closed first
  const absl::Duration connect_timeout_;
  int retries_left_;
  const absl::Duration idle_timeout_;  // zero: never
  absl::Time last_activity_;           // a byte moved either way (loop time)
  absl::Time connect_deadline_;
  UniqueFd client_;
  UniqueFd upstream_;
  Side client_side_;
  Side upstream_side_;
  Direction to_upstream_;
  Direction to_client_;
  bool connected_ = false;
  bool closed_ = false;
};

// A client of an accept_proxy route until its PROXY header is complete.
// The header is read with MSG_PEEK and consumed only once whole, so the
// bytes after it stay in the socket for the relay's splice.
class Proxy::PendingHeader : public Watcher {
 public:
  PendingHeader(Proxy* proxy, const Route& route, RouteStats* stats, UpstreamPool* pool,
                UniqueFd fd, const SocketAddress& peer)
      : proxy_(proxy),
        route_(route),
        stats_(stats),
        pool_(pool),
        fd_(std::move(fd)),
        peer_(peer),
        deadline_(absl::Now() + route.proxy_header_timeout) {}

  void OnEvents(uint32_t events) override {
    if (done_) return;
    char buffer[kProxyV2FixedLength + kProxyV2MaxDeclaredLength];
    ssize_t n = recv(fd_.get(), buffer, sizeof buffer, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) return Fail(n == 0 ? "closed before a complete PROXY header"
                                   : "reset before a complete PROXY header");
    ProxyHeader header;
    std::string error;
    switch (ParseProxyHeader(absl::string_view(buffer, static_cast<size_t>(n)), &header, &error)) {
      case ProxyParse::kNeedMore:
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          return Fail("closed before a complete PROXY header");
        }
        return;  // the next bytes bring a new edge
      case ProxyParse::kInvalid:
        return Fail(error);
      case ProxyParse::kDone:
        break;
    }
    // Consume exactly the header.
    ssize_t consumed = recv(fd_.get(), buffer, header.length, 0);
    if (consumed != static_cast<ssize_t>(header.length)) return Fail("PROXY header read failed");
    SocketAddress client = header.local ? peer_ : header.source;
    SocketAddress destination = header.local ? SocketAddress() : header.destination;
    proxy_->Deregister(fd_.get());
    UniqueFd fd = std::move(fd_);
    Finish();
    // The route slot taken at accept passes to the relay.
    if (!proxy_->StartRelay(route_, stats_, pool_, std::move(fd), client, destination)) {
      // Out of descriptors: the pause is already set.
    }
  }

  void Fail(const std::string& why) {
    stats_->proxy_header_errors.fetch_add(1, std::memory_order_relaxed);
    stats_->active.fetch_sub(1, std::memory_order_relaxed);
    absl::Time now = absl::Now();
    if (now - proxy_->last_header_error_log_ > absl::Seconds(1)) {
      LOG(WARNING) << "route " << route_.name << ": client " << peer_.ToString()
                   << " closed: " << why << " (accept_proxy)";
      proxy_->last_header_error_log_ = now;
    }
    proxy_->LogRefused(route_, peer_, "proxy_header_error");
    proxy_->Deregister(fd_.get());
    fd_.Reset();
    Finish();
  }

  // Leaves the proxy's books; freed after the current batch.
  void Finish() {
    done_ = true;
    proxy_->active_count_.fetch_sub(1, std::memory_order_relaxed);
    proxy_->header_deadlines_.erase({deadline_, this});
    proxy_->pending_.erase(this);
    proxy_->retired_.emplace_back(this);
  }

  Proxy* proxy_;
  const Route route_;
  RouteStats* stats_;
  UpstreamPool* pool_;
  UniqueFd fd_;
  const SocketAddress peer_;
  const absl::Time deadline_;
  bool done_ = false;
};

Proxy::Proxy(Telemetry* telemetry, Options options)
    : telemetry_(telemetry),
      options_(options),
      epoll_fd_(epoll_create1(EPOLL_CLOEXEC)),
      posted_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  PCHECK(epoll_fd_.valid()) << "epoll_create1";
  PCHECK(posted_fd_.valid()) << "eventfd";
  Watch(posted_fd_.get(), [this] { RunPosted(); });
}

void Proxy::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(task));
  }
  uint64_t one = 1;
  (void)!write(posted_fd_.get(), &one, sizeof one);
}

void Proxy::RunPosted() {
  uint64_t count;
  (void)!read(posted_fd_.get(), &count, sizeof count);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

Proxy::~Proxy() {
  CloseAllConnections();
  for (Pipe& pipe : pipe_pool_) {
    close(pipe.read_fd);
    close(pipe.write_fd);
  }
}

void Proxy::Register(int fd, uint32_t events, Watcher* watcher) {
  epoll_event event = {};
  event.events = events;
  event.data.ptr = watcher;
  PCHECK(epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) == 0) << "epoll_ctl ADD " << fd;
}

void Proxy::Deregister(int fd) { epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }

void Proxy::Watch(int fd, std::function<void()> on_readable) {
  auto watcher = std::make_unique<FdWatcher>(std::move(on_readable));
  Register(fd, EPOLLIN, watcher.get());
  watched_[fd] = std::move(watcher);
}

void Proxy::WatchEvents(int fd, uint32_t events, std::function<void(uint32_t)> on_events) {
  auto watcher = std::make_unique<EventsWatcher>(std::move(on_events));
  Register(fd, events, watcher.get());
  watched_[fd] = std::move(watcher);
}

void Proxy::ChangeWatch(int fd, uint32_t events) {
  auto it = watched_.find(fd);
  if (it == watched_.end()) return;
  epoll_event event = {};
  event.events = events;
  event.data.ptr = it->second.get();
  PCHECK(epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &event) == 0) << "epoll_ctl MOD " << fd;
}

void Proxy::Unwatch(int fd) {
  Deregister(fd);
  // Freed after the current batch: an event for it may still be pending.
  auto it = watched_.find(fd);
  if (it != watched_.end()) {
    retired_.push_back(std::move(it->second));
    watched_.erase(it);
  }
}

absl::Status Proxy::SetRoutes(const std::vector<Route>& routes,
                              std::map<std::string, UniqueFd>* inherited) {
  if (stopped_accepting_) {
    return absl::FailedPreconditionError("stopped accepting (draining): no listener is re-opened");
  }
  absl::Status distinct = CheckRoutesAreDistinct(routes);
  if (!distinct.ok()) return distinct;
  // First acquire every new listener, so a failure changes nothing.
  std::map<std::string, UniqueFd> fresh;
  for (const Route& route : routes) {
    std::string address = route.listen.ToString();
    bool kept = std::any_of(listeners_.begin(), listeners_.end(), [&](const auto& l) {
      return l->route_.listen.ToString() == address;
    });
    if (kept) continue;
    if (inherited != nullptr && inherited->count(address) > 0) {
      fresh[address] = std::move((*inherited)[address]);
      inherited->erase(address);
      continue;
    }
    absl::StatusOr<UniqueFd> fd = BindListener(route.listen);
    if (!fd.ok()) {
      return absl::Status(fd.status().code(),
                          absl::StrCat("route ", route.name, ": ", fd.status().message()));
    }
    fresh[address] = std::move(*fd);
  }
  // Then swap: update kept listeners, add new ones, drop removed ones.
  std::vector<std::unique_ptr<Listener>> next;
  for (const Route& route : routes) {
    std::string address = route.listen.ToString();
    auto kept = std::find_if(listeners_.begin(), listeners_.end(), [&](const auto& l) {
      return l && l->route_.listen.ToString() == address;
    });
    if (kept != listeners_.end()) {
      (*kept)->route_ = route;
      (*kept)->stats_ = telemetry_->StatsFor(route.name);
      (*kept)->pool_ = telemetry_->PoolFor(route);
      next.push_back(std::move(*kept));
      continue;
    }
    auto listener = std::make_unique<Listener>(this, route, std::move(fresh[address]),
                                               telemetry_->StatsFor(route.name),
                                               telemetry_->PoolFor(route));
    SetNonBlocking(listener->fd_.get()).IgnoreError();
    if (!accept_paused_until_ || !options_.shared_listeners) ArmListener(listener.get());
    if (options_.worker_stats == nullptr || options_.worker_stats->index == 0) {
      std::string upstreams;
      for (const UpstreamSpec& u : route.upstreams) {
        absl::StrAppend(&upstreams, upstreams.empty() ? "" : ", ", u.address.ToString(),
                        u.weight != 1 ? absl::StrCat(" weight ", u.weight) : "",
                        u.backup ? " (backup)" : "");
      }
      LOG(INFO) << "route " << route.name << ": listening on " << address << ", relaying to "
                << upstreams
                << (route.upstreams.size() > 1 ? absl::StrCat(" (", BalanceName(route.balance), ")")
                                               : "");
    }
    AcceptFrom(listener.get());  // connections may already be queued (inherited)
    next.push_back(std::move(listener));
  }
  for (auto& old : listeners_) {
    if (!old) continue;
    if (options_.worker_stats == nullptr || options_.worker_stats->index == 0) {
      LOG(INFO) << "route " << old->route_.name << ": no longer listening on "
                << old->route_.listen.ToString();
    }
    DisarmListener(old.get());
    retired_.push_back(std::move(old));  // an event for it may still be pending
  }
  listeners_ = std::move(next);
  routes_ = routes;
  telemetry_->SetRoutes(routes);
  return absl::OkStatus();
}

void Proxy::AcceptFrom(Listener* listener) {
  if (accept_paused_until_) return;
  // Shared (level-triggered): a batch, the loop comes back for the rest.
  // Alone (edge-triggered): until the queue is empty.
  for (int accepted = 0;
       !options_.shared_listeners || accepted < kSharedAcceptBatch; ++accepted) {
    SocketAddress client_address;
    client_address.length = sizeof client_address.storage;
    int fd = accept4(listener->fd_.get(), reinterpret_cast<sockaddr*>(&client_address.storage),
                     &client_address.length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the queued connection stays queued;
      // pause instead of spinning on it, and retry on a timer.
      telemetry_->accept_errors.fetch_add(1);
      absl::Time now = absl::Now();
      if (now - last_accept_error_log_ > absl::Seconds(1)) {
        PLOG(WARNING) << "accept on " << listener->route_.listen.ToString()
                      << " failed; pausing accepts for "
                      << absl::FormatDuration(kAcceptPause);
        last_accept_error_log_ = now;
      }
      PauseAccepting(now + kAcceptPause);
      return;
    }
    UniqueFd client(fd);
    if (!listener->nodelay_inherited_) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    RouteStats* stats = listener->stats_;
    stats->total.fetch_add(1, std::memory_order_relaxed);
    // A slot of the route's limit is taken before anything else (exact
    // across workers: the count is shared); every path that does not open
    // the connection gives it back.
    const int64_t max = listener->route_.max_connections;
    if (stats->active.fetch_add(1, std::memory_order_relaxed) >= max && max > 0) {
      stats->active.fetch_sub(1, std::memory_order_relaxed);
      stats->over_limit.fetch_add(1, std::memory_order_relaxed);
      LogRefused(listener->route_, client_address, "over_limit");
      continue;  // closing `client` tells the client at once
    }
    if (listener->route_.accept_proxy) {
      // The header first, then the upstream, picked by the address in it.
      auto pending = std::make_unique<PendingHeader>(this, listener->route_, stats,
                                                     listener->pool_, std::move(client),
                                                     client_address);
      PendingHeader* raw = pending.release();
      pending_.insert(raw);
      header_deadlines_.insert({raw->deadline_, raw});
      active_count_.fetch_add(1, std::memory_order_relaxed);
      Register(raw->fd_.get(), EPOLLIN | EPOLLRDHUP | EPOLLET, raw);
      continue;
    }
    if (!StartRelay(listener->route_, stats, listener->pool_, std::move(client), client_address,
                    SocketAddress())) {
      return;
    }
  }
}

bool Proxy::StartRelay(const Route& route, RouteStats* stats, UpstreamPool* pool,
                       UniqueFd client, const SocketAddress& client_address,
                       const SocketAddress& destination) {
  UpstreamState* chosen = pool->Pick(client_address);
  if (chosen == nullptr) {
    stats->active.fetch_sub(1, std::memory_order_relaxed);
    stats->no_upstream.fetch_add(1, std::memory_order_relaxed);
    LogRefused(route, client_address, "no_upstream");
    return true;  // closing `client` tells the client at once
  }
  absl::StatusOr<UniqueFd> upstream = StartConnect(chosen->address);
  // A connect refused at once (as loopback may) is retried here like one
  // that fails later (Connection::TryAnotherUpstream).
  int retried = 0;
  std::string last_tried = chosen->name;
  for (int retries = route.connect_retries;
       !upstream.ok() && errno != EMFILE && errno != ENFILE && retries > 0; --retries) {
    stats->upstream_connect_errors.fetch_add(1);
    pool->Release(chosen);
    pool->ConnectFailed(chosen, upstream.status().message());
    UpstreamState* next = pool->Pick(client_address, chosen);
    if (next == nullptr) {
      chosen = nullptr;
      break;
    }
    chosen = next;
    last_tried = chosen->name;
    ++retried;
    stats->upstream_retries.fetch_add(1, std::memory_order_relaxed);
    upstream = StartConnect(chosen->address);
  }
  if (chosen == nullptr || !upstream.ok()) stats->active.fetch_sub(1, std::memory_order_relaxed);
  if (chosen == nullptr) {  // nothing left to try: closing `client` tells it
    LogRefused(route, client_address, "connect_failed", last_tried);
    return true;
  }
  if (!upstream.ok()) {
    const int err = errno;  // StartConnect's failing call set it last
    pool->Release(chosen);
    stats->upstream_connect_errors.fetch_add(1);
    LogRefused(route, client_address, "connect_failed", chosen->name);
    if (err == EMFILE || err == ENFILE) {
      // Out of descriptors for the upstream side: accepting on would
      // only refuse every queued client in turn. Pause as above.
      telemetry_->accept_errors.fetch_add(1);
      absl::Time now = absl::Now();
      if (now - last_accept_error_log_ > absl::Seconds(1)) {
        LOG(WARNING) << "connection on " << route.listen.ToString()
                     << " failed; pausing accepts for " << absl::FormatDuration(kAcceptPause)
                     << " (upstream " << upstream.status().message() << ")";
        last_accept_error_log_ = now;
      }
      PauseAccepting(now + kAcceptPause);
      return false;  // closing `client` tells that client at once
    }
    pool->ConnectFailed(chosen, upstream.status().message());
    return true;  // closing `client` tells the client at once
  }
  active_count_.fetch_add(1, std::memory_order_relaxed);
  if (options_.worker_stats != nullptr) {
    options_.worker_stats->active.fetch_add(1, std::memory_order_relaxed);
    options_.worker_stats->total.fetch_add(1, std::memory_order_relaxed);
  }
  auto connection = std::make_unique<Connection>(this, route, stats, pool, chosen, client_address,
                                                 destination, retried, std::move(client),
                                                 std::move(*upstream));
  Connection* raw = connection.release();
  connections_.insert(raw);
  connect_deadlines_.insert({raw->connect_deadline_, raw});
  raw->Start();
  return true;
}

void Proxy::LogRefused(const Route& route, const SocketAddress& client, const char* ended,
                       const std::string& upstream) {
  if (options_.access_log == nullptr) return;
  AccessLogEntry entry;
  entry.start = entry.end = absl::Now();
  entry.route = route.name;
  entry.client = client.ToString();
  entry.upstream = upstream;
  entry.ended = ended;
  entry.ended_by = "gateway";
  options_.access_log->Write(AccessLogLine(entry));
}

void Proxy::ClosePending(PendingHeader* pending) {
  pending->Fail(absl::StrCat("no complete PROXY header within ",
                             absl::FormatDuration(pending->route_.proxy_header_timeout)));
}

void Proxy::ResumeAccepting() {
  accept_paused_until_.reset();
  for (auto& listener : listeners_) ArmListener(listener.get());
  for (auto& listener : listeners_) {
    AcceptFrom(listener.get());
    if (accept_paused_until_) return;
  }
}

void Proxy::Close(Connection* connection) {
  if (connection->closed_) return;
  connect_deadlines_.erase({connection->connect_deadline_, connection});
  connection->Shutdown();  // deregisters and closes both sockets
  connections_.erase(connection);
  closed_.emplace_back(connection);
}

// Once a second: routes with an idle_timeout close connections that moved
// no byte for that long (so the timeout is kept to within a second).
void Proxy::CloseIdle(absl::Time now) {
  std::vector<Connection*> idle;
  for (Connection* connection : connections_) {
    if (connection->idle_timeout_ > absl::ZeroDuration() &&
        now - connection->last_activity_ >= connection->idle_timeout_) {
      idle.push_back(connection);
    }
  }
  for (Connection* connection : idle) {
    connection->stats_->idle_closed.fetch_add(1, std::memory_order_relaxed);
    connection->SetEnd("idle_timeout", "gateway");
    Close(connection);
  }
}

void Proxy::ExpireConnects(absl::Time now) {
  while (!connect_deadlines_.empty() && connect_deadlines_.begin()->first <= now) {
    connect_deadlines_.begin()->second->ConnectTimedOut();
  }
  while (!header_deadlines_.empty() && header_deadlines_.begin()->first <= now) {
    ClosePending(header_deadlines_.begin()->second);
  }
}

std::optional<Proxy::Pipe> Proxy::AcquirePipe() {
  if (!pipe_pool_.empty()) {
    Pipe pipe = pipe_pool_.back();
    pipe_pool_.pop_back();
    return pipe;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return std::nullopt;
  // Best effort: over the per-user pipe budget the kernel keeps the default.
  fcntl(fds[1], F_SETPIPE_SZ, kPipeBytes);
  return Pipe{fds[0], fds[1]};
}

void Proxy::ReleasePipe(Pipe pipe) {
  if (pipe_pool_.size() < kPipePoolMax) {
    pipe_pool_.push_back(pipe);
  } else {
    close(pipe.read_fd);
    close(pipe.write_fd);
  }
}

void Proxy::RunUntil(const std::function<bool()>& done, absl::Time deadline,
                     absl::Duration tick, const std::function<void()>& on_tick) {
  epoll_event events[kMaxEvents];
  absl::Time next_tick = absl::Now() + tick;
  while (!done()) {
    absl::Time now = absl::Now();
    last_iteration_ns_.store(absl::ToUnixNanos(now), std::memory_order_relaxed);
    if (now >= deadline) return;
    absl::Time wake = std::min(deadline, next_tick);
    if (!connect_deadlines_.empty()) wake = std::min(wake, connect_deadlines_.begin()->first);
    if (!header_deadlines_.empty()) wake = std::min(wake, header_deadlines_.begin()->first);
    if (accept_paused_until_) wake = std::min(wake, *accept_paused_until_);
    int timeout_ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(wake - now, absl::Milliseconds(1)))));
    int n = epoll_wait(epoll_fd_.get(), events, kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) PLOG(FATAL) << "epoll_wait";
    loop_now_ = absl::Now();
    for (int i = 0; i < n; ++i) {
      static_cast<Watcher*>(events[i].data.ptr)->OnEvents(events[i].events);
    }
    closed_.clear();
    retired_.clear();
    now = absl::Now();
    ExpireConnects(now);
    if (now >= next_idle_sweep_) {
      CloseIdle(now);
      next_idle_sweep_ = now + absl::Seconds(1);
    }
    closed_.clear();
    if (accept_paused_until_ && now >= *accept_paused_until_) ResumeAccepting();
    if (now >= next_tick) {
      next_tick = now + tick;
      if (on_tick) on_tick();
    }
  }
}

void Proxy::StopAccepting() {
  stopped_accepting_ = true;
  for (auto& listener : listeners_) {
    DisarmListener(listener.get());
    listener->fd_.Reset();
    retired_.push_back(std::move(listener));
  }
  listeners_.clear();
}

int64_t Proxy::CloseAllConnections() {
  int64_t count = static_cast<int64_t>(connections_.size() + pending_.size());
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* connection : open) {
    connection->SetEnd("drain_deadline", "gateway");
    Close(connection);
  }
  std::vector<PendingHeader*> pending(pending_.begin(), pending_.end());
  for (PendingHeader* p : pending) p->Fail("the drain deadline came first");
  // Not freed here: this may run inside a batch of events (a task posted to
  // a worker), whose later events may still name these connections; the
  // loop frees them after the batch (or the destructor does).
  return count;
}

std::vector<std::pair<std::string, int>> Proxy::ListenerFds() const {
  std::vector<std::pair<std::string, int>> fds;
  for (const auto& listener : listeners_) {
    fds.emplace_back(listener->route_.listen.ToString(), listener->fd_.get());
  }
  return fds;
}

}  // namespace gateway
