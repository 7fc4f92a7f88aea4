// See control_server.h.
#include "gateway/ops/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "glog/logging.h"

namespace gateway {
namespace {

// A socket address for `path`. A path longer than sun_path (a deep state
// directory) is reached through /proc/self/fd/N of its directory, whose
// descriptor is kept open in `dir_holder` while the address is used.
absl::StatusOr<sockaddr_un> UnixAddress(const std::string& path, UniqueFd* dir_holder) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string usable = path;
  if (path.size() >= sizeof addr.sun_path) {
    size_t slash = path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    dir_holder->Reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dir_holder->valid()) return ErrnoStatus(errno, absl::StrCat("open ", dir));
    usable = absl::StrCat("/proc/self/fd/", dir_holder->get(), "/", path.substr(slash + 1));
    if (usable.size() >= sizeof addr.sun_path) {
      return absl::InvalidArgumentError(absl::StrCat("socket name in ", path, " is too long"));
    }
  }
  std::memcpy(addr.sun_path, usable.c_str(), usable.size());
  return addr;
}

bool PeerAllowed(int fd, pid_t* pid) {
  ucred cred = {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  *pid = cred.pid;
  return cred.uid == geteuid() || cred.uid == 0;
}

}  // namespace

ControlConnection::~ControlConnection() {
  if (server_ != nullptr && fd_.valid()) server_->proxy_->Unwatch(fd_.get());
}

bool ControlConnection::Send(const nlohmann::json& message) {
  if (!fd_.valid()) return false;
  std::string line = DumpJson(message) + "\n";
  if (out_.size() - sent_ + line.size() > kMaxControlPendingBytes) {
    Drop(absl::StrCat("more than ", kMaxControlPendingBytes / (1024 * 1024),
                      " MiB of replies unread"));
    return false;
  }
  if (!pending()) {
    out_.clear();
    sent_ = 0;
    pending_since_ = absl::Now();
  }
  out_.append(line);
  if (!Flush()) return false;
  if (server_ != nullptr) server_->UpdateWatch(this);
  return true;
}

bool ControlConnection::Flush() {
  while (pending()) {
    ssize_t n = RetryOnEintr([&] {
      return send(fd_.get(), out_.data() + sent_, out_.size() - sent_,
                  MSG_DONTWAIT | MSG_NOSIGNAL);
    });
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // EPOLLOUT later
    if (n <= 0) {
      Close();  // the peer is gone
      return false;
    }
    sent_ += static_cast<size_t>(n);
  }
  out_.clear();
  sent_ = 0;
  return true;
}

void ControlConnection::Drop(const std::string& why) {
  if (!fd_.valid()) return;
  LOG(WARNING) << "control client pid " << peer_pid_ << " dropped: " << why;
  Close();
}

void ControlConnection::Close() {
  if (!fd_.valid()) return;
  out_.clear();
  sent_ = 0;
  if (server_ != nullptr) server_->Release(this);
  fd_.Reset();
}

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(const StateDirectory& dir,
                                                                    Proxy* proxy,
                                                                    Handler handler) {
  std::unique_ptr<ControlServer> server(new ControlServer(proxy, std::move(handler)));
  server->path_ = dir.PathOf(kControlSocket);
  std::string temp = dir.PathOf(absl::StrCat(".control.", getpid(), ".sock"));
  UniqueFd dir_holder;
  absl::StatusOr<sockaddr_un> temp_addr = UnixAddress(temp, &dir_holder);
  if (!temp_addr.ok()) return temp_addr.status();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "control socket");
  server->sweep_fd_.Reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!server->sweep_fd_.valid()) return ErrnoStatus(errno, "control socket timer");
  unlink(temp.c_str());
  mode_t old_mask = umask(0077);
  int bound = bind(fd.get(), reinterpret_cast<sockaddr*>(&*temp_addr), sizeof *temp_addr);
  umask(old_mask);
  if (bound != 0) return ErrnoStatus(errno, absl::StrCat("bind control socket ", temp));
  if (listen(fd.get(), 16) != 0) return ErrnoStatus(errno, "listen on control socket");
  if (rename(temp.c_str(), server->path_.c_str()) != 0) {
    int err = errno;
    unlink(temp.c_str());
    return ErrnoStatus(err, absl::StrCat("install control socket ", server->path_));
  }
  struct stat st;
  if (stat(server->path_.c_str(), &st) == 0) server->inode_ = st.st_ino;
  server->listen_fd_ = std::move(fd);
  server->serving_ = true;
  ControlServer* raw = server.get();
  proxy->Watch(raw->listen_fd_.get(), [raw] { raw->Accept(); });
  proxy->Watch(raw->sweep_fd_.get(), [raw] { raw->Sweep(); });
  return server;
}

ControlServer::~ControlServer() {
  Stop();
  for (auto& [fd, connection] : connections_) {
    proxy_->Unwatch(fd);
    connection->server_ = nullptr;
  }
  connections_.clear();
}

void ControlServer::Stop() {
  if (!serving_) return;
  serving_ = false;
  proxy_->Unwatch(listen_fd_.get());
  proxy_->Unwatch(sweep_fd_.get());
  listen_fd_.Reset();
  // Requests still arriving are not served any more.
  std::vector<std::shared_ptr<ControlConnection>> unanswered;
  for (auto& [fd, connection] : connections_) {
    if (!connection->request_done_) unanswered.push_back(connection);
  }
  for (auto& connection : unanswered) connection->Close();
  // A successor may have renamed its own socket into place by now.
  struct stat st;
  if (stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) unlink(path_.c_str());
}

void ControlServer::FlushPending(absl::Duration budget) {
  absl::Time deadline = absl::Now() + budget;
  for (;;) {
    std::vector<std::shared_ptr<ControlConnection>> waiting;
    std::vector<pollfd> fds;
    for (auto& [fd, connection] : connections_) {
      if (!connection->pending()) continue;
      waiting.push_back(connection);
      fds.push_back({fd, POLLOUT, 0});
    }
    if (waiting.empty()) return;
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) {
      for (auto& connection : waiting) {
        connection->Drop(absl::StrCat("its last replies were not read within ",
                                      absl::FormatDuration(budget), " of the exit"));
      }
      return;
    }
    if (poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) return;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) waiting[i]->Flush();
    }
  }
}

void ControlServer::Accept() {
  for (;;) {
    int raw = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (raw < 0) return;
    UniqueFd fd(raw);
    pid_t pid = 0;
    if (!PeerAllowed(raw, &pid)) {
      LOG(WARNING) << "control socket: refused a connection from pid " << pid
                   << " running as another user";
      continue;
    }
    if (connections_.size() >= static_cast<size_t>(kMaxControlConnections)) {
      absl::Time now = absl::Now();
      if (now - last_refusal_log_ > absl::Seconds(10)) {
        last_refusal_log_ = now;
        LOG(WARNING) << "control socket: " << kMaxControlConnections
                     << " clients are connected; refusing more (from pid " << pid << ")";
      }
      continue;
    }
    auto connection = std::make_shared<ControlConnection>(std::move(fd), pid);
    connection->server_ = this;
    connection->accepted_at_ = absl::Now();
    connections_[raw] = connection;
    proxy_->WatchEvents(raw, EPOLLIN | EPOLLRDHUP,
                        [this, raw](uint32_t events) { OnEvents(raw, events); });
    ArmSweep();
  }
}

void ControlServer::OnEvents(int fd, uint32_t events) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  std::shared_ptr<ControlConnection> connection = it->second;  // alive through this call
  if ((events & EPOLLOUT) && connection->pending() && connection->Flush()) {
    UpdateWatch(connection.get());
  }
  const bool input = events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR);
  if (input && !connection->closed() && connection->request_done_ && connection->reader_) {
    std::function<void()> reader = connection->reader_;  // it may replace itself
    reader();
  } else if (!connection->closed() && (events & (EPOLLHUP | EPOLLERR))) {
    connection->Close();  // the peer closed both directions: nobody reads replies
  } else if (!connection->closed() && (events & (EPOLLIN | EPOLLRDHUP))) {
    if (!connection->request_done_) {
      ReadRequest(connection);
    } else {
      DiscardInput(connection);
    }
  }
  connection.reset();
  CloseIfFinished(fd);
}

void ControlServer::ReadRequest(const std::shared_ptr<ControlConnection>& connection) {
  char buffer[4096];
  bool ended = false;
  for (;;) {
    ssize_t n = read(connection->fd(), buffer, sizeof buffer);
    if (n > 0) {
      connection->request_.append(buffer, static_cast<size_t>(n));
      if (connection->request_.size() > kMaxControlRequestBytes) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (connection->request_.find('\n') == std::string::npos) return;  // wait for more
      break;
    }
    ended = true;  // EOF or error: serve what came
    break;
  }
  connection->request_done_ = true;
  connection->input_ended_ = ended;
  std::string line = connection->request_.substr(0, connection->request_.find('\n'));
  connection->request_.clear();
  connection->request_.shrink_to_fit();
  UpdateWatch(connection.get());
  absl::StatusOr<nlohmann::json> request = ParseJsonObject(line);
  if (!request.ok() || !request->contains("cmd") || !(*request)["cmd"].is_string()) {
    connection->Send({{"ok", false}, {"error", "bad request: need a JSON object with \"cmd\""}});
    return;
  }
  handler_(*request, connection);
}

void ControlServer::DiscardInput(const std::shared_ptr<ControlConnection>& connection) {
  char buffer[4096];
  for (int i = 0; i < 16; ++i) {  // bounded per wake-up; level-triggered brings the rest
    ssize_t n = read(connection->fd(), buffer, sizeof buffer);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    // End of its input: a half-close still reads replies; a full close
    // shows as EPOLLHUP (always reported) and closes the connection.
    connection->input_ended_ = true;
    UpdateWatch(connection.get());
    return;
  }
}

void ControlServer::UpdateWatch(ControlConnection* connection) {
  if (connection->closed() || !serving_) return;
  uint32_t events = connection->input_ended_ ? 0 : (EPOLLIN | EPOLLRDHUP);
  if (connection->pending()) events |= EPOLLOUT;
  proxy_->ChangeWatch(connection->fd(), events);
}

void ControlServer::Release(ControlConnection* connection) {
  int fd = connection->fd();
  auto it = connections_.find(fd);
  if (it == connections_.end() || it->second.get() != connection) return;
  proxy_->Unwatch(fd);
  connection->server_ = nullptr;
  // The caller holds its own reference (a handler's, or OnEvents'/Sweep's).
  connections_.erase(it);
}

void ControlServer::CloseIfFinished(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  ControlConnection& connection = *it->second;
  // Answered, written, and no handler keeps it for later events.
  if (connection.request_done_ && !connection.pending() && it->second.use_count() == 1) {
    std::shared_ptr<ControlConnection> last = it->second;
    last->Close();
  }
}

void ControlServer::ArmSweep() {
  if (sweep_armed_) return;
  constexpr long kSweepNanos = 250 * 1000 * 1000;
  itimerspec spec = {};
  spec.it_interval.tv_nsec = kSweepNanos;
  spec.it_value.tv_nsec = kSweepNanos;
  if (timerfd_settime(sweep_fd_.get(), 0, &spec, nullptr) == 0) sweep_armed_ = true;
}

void ControlServer::Sweep() {
  uint64_t expirations;
  (void)!read(sweep_fd_.get(), &expirations, sizeof expirations);
  absl::Time now = absl::Now();
  std::vector<std::shared_ptr<ControlConnection>> all;
  for (auto& [fd, connection] : connections_) all.push_back(connection);
  for (auto& connection : all) {
    if (!connection->request_done_ && now - connection->accepted_at_ > kControlRequestTimeout) {
      connection->Drop(absl::StrCat("no complete request within ",
                                    absl::FormatDuration(kControlRequestTimeout)));
    } else if (connection->pending() && now - connection->pending_since_ > kControlSendTimeout) {
      connection->Drop(absl::StrCat("its replies went unread for ",
                                    absl::FormatDuration(kControlSendTimeout), " (",
                                    connection->out_.size() - connection->sent_,
                                    " bytes waiting)"));
    }
  }
  std::vector<int> fds;
  for (auto& connection : all) {
    if (!connection->closed()) fds.push_back(connection->fd());
  }
  all.clear();
  for (int fd : fds) CloseIfFinished(fd);
  if (connections_.empty()) {
    itimerspec off = {};
    timerfd_settime(sweep_fd_.get(), 0, &off, nullptr);
    sweep_armed_ = false;
  }
}

absl::StatusOr<UniqueFd> ConnectControl(const std::string& socket_path, absl::Duration timeout) {
  UniqueFd dir_holder;
  absl::StatusOr<sockaddr_un> addr = UnixAddress(socket_path, &dir_holder);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  // A Unix stream connect waits for room in the listener's backlog for at
  // most the send timeout (a stopped gateway accepts nothing).
  timeval bound = absl::ToTimeval(std::max(timeout, absl::Milliseconds(1)));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
  if (RetryOnEintr([&] {
        return connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr);
      }) != 0) {
    if (errno == EAGAIN || errno == EINPROGRESS) {
      return absl::DeadlineExceededError(
          absl::StrCat("control socket ", socket_path, " accepted no connection within ",
                       absl::FormatDuration(timeout)));
    }
    return ErrnoStatus(errno, absl::StrCat("connect to control socket ", socket_path));
  }
  ucred cred = {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (cred.uid != geteuid() && cred.uid != 0)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "control socket ", socket_path, " is served by uid ", cred.uid, ", not by us; refusing it"));
  }
  return fd;
}

absl::Status WriteControlLine(int fd, const nlohmann::json& message, absl::Duration timeout) {
  std::string line = DumpJson(message) + "\n";
  absl::string_view rest = line;
  absl::Time deadline = absl::Now() + timeout;
  while (!rest.empty()) {
    ssize_t n = RetryOnEintr(
        [&] { return send(fd, rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL); });
    if (n > 0) {
      rest.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return ErrnoStatus(errno, "write control socket");
    }
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the gateway took no request on its control socket within ", absl::FormatDuration(timeout)));
    }
    pollfd p = {fd, POLLOUT, 0};
    (void)poll(&p, 1, wait_ms);
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> ReadControlLine(int fd, absl::Duration timeout, size_t max_bytes) {
  std::string line;
  absl::Time deadline = absl::Now() + timeout;
  char buffer[64 * 1024];
  for (;;) {
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no answer on the control socket within ", absl::FormatDuration(timeout)));
    }
    pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, wait_ms);
    if (ready <= 0) continue;  // EINTR or the deadline: checked above
    // Peek first and take only up to the newline: the next line (a later
    // event) stays in the socket for the next call.
    ssize_t n = RetryOnEintr([&] { return recv(fd, buffer, sizeof buffer, MSG_PEEK | MSG_DONTWAIT); });
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return ErrnoStatus(errno, "read control socket");
    if (n == 0) return absl::UnavailableError("the gateway closed the control connection");
    const char* newline = static_cast<const char*>(std::memchr(buffer, '\n', static_cast<size_t>(n)));
    size_t take = newline != nullptr ? static_cast<size_t>(newline - buffer) + 1 : static_cast<size_t>(n);
    ssize_t got = RetryOnEintr([&] { return recv(fd, buffer, take, MSG_DONTWAIT); });
    if (got <= 0) return ErrnoStatus(errno, "read control socket");
    bool complete = newline != nullptr && static_cast<size_t>(got) == take;
    line.append(buffer, static_cast<size_t>(got) - (complete ? 1 : 0));
    if (line.size() > max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the gateway's reply is larger than ", max_bytes / (1024 * 1024),
          " MiB; refusing to cut it (use the admin server's /status)"));
    }
    if (complete) return ParseJsonObject(line);
  }
}

}  // namespace gateway
