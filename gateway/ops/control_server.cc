// See control_server.h.
#include "gateway/ops/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/base/json_util.h"
#include "glog/logging.h"

namespace gateway {
namespace {

constexpr size_t kMaxRequestBytes = 16 * 1024;

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

bool ControlConnection::Send(const nlohmann::json& message) {
  if (!fd_.valid()) return false;
  if (!WriteControlLine(fd_.get(), message).ok()) {
    fd_.Reset();
    return false;
  }
  return true;
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
  ControlServer* raw = server.get();
  proxy->Watch(raw->listen_fd_.get(), [raw] { raw->Accept(); });
  return server;
}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Stop() {
  if (!listen_fd_.valid()) return;
  proxy_->Unwatch(listen_fd_.get());
  for (auto& [fd, pending] : reading_) proxy_->Unwatch(fd);
  reading_.clear();
  listen_fd_.Reset();
  // A successor may have renamed its own socket into place by now.
  struct stat st;
  if (stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) unlink(path_.c_str());
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
    auto connection = std::make_shared<ControlConnection>(std::move(fd), pid);
    reading_[raw] = Pending{connection, ""};
    proxy_->Watch(raw, [this, raw] { Read(raw); });
  }
}

void ControlServer::Read(int fd) {
  auto it = reading_.find(fd);
  if (it == reading_.end()) return;
  Pending& pending = it->second;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n > 0) {
      pending.buffer.append(buffer, static_cast<size_t>(n));
      if (pending.buffer.size() > kMaxRequestBytes) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (pending.buffer.find('\n') == std::string::npos) return;  // wait for more
    }
    break;  // EOF, error, or a complete line
  }
  std::shared_ptr<ControlConnection> connection = pending.connection;
  std::string line = pending.buffer.substr(0, pending.buffer.find('\n'));
  proxy_->Unwatch(fd);
  reading_.erase(it);
  absl::StatusOr<nlohmann::json> request = ParseJsonObject(line);
  if (!request.ok() || !request->contains("cmd") || !(*request)["cmd"].is_string()) {
    connection->Send({{"ok", false}, {"error", "bad request: need a JSON object with \"cmd\""}});
    return;
  }
  // The connection is blocking from here on: replies are small.
  int flags = fcntl(connection->fd(), F_GETFL);
  fcntl(connection->fd(), F_SETFL, flags & ~O_NONBLOCK);
  handler_(*request, connection);
}

absl::StatusOr<UniqueFd> ConnectControl(const std::string& socket_path) {
  UniqueFd dir_holder;
  absl::StatusOr<sockaddr_un> addr = UnixAddress(socket_path, &dir_holder);
  if (!addr.ok()) return addr.status();
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  if (RetryOnEintr([&] {
        return connect(fd.get(), reinterpret_cast<sockaddr*>(&*addr), sizeof *addr);
      }) != 0) {
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

absl::Status WriteControlLine(int fd, const nlohmann::json& message) {
  return WriteAll(fd, DumpJson(message) + "\n");
}

absl::StatusOr<nlohmann::json> ReadControlLine(int fd, absl::Duration timeout) {
  std::string line;
  absl::Time deadline = absl::Now() + timeout;
  char c;
  while (line.size() < kMaxRequestBytes) {
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) return absl::DeadlineExceededError("no answer on the control socket");
    pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = RetryOnEintr([&] { return read(fd, &c, 1); });
    if (n < 0) return ErrnoStatus(errno, "read control socket");
    if (n == 0) return absl::UnavailableError("the gateway closed the control connection");
    if (c == '\n') return ParseJsonObject(line);
    line.push_back(c);
  }
  return absl::DataLossError("control message too long");
}

}  // namespace gateway
