// See net.h.
#include "gateway/base/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gateway {

absl::StatusOr<SocketAddress> SocketAddress::Parse(const std::string& text) {
  std::string host;
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad address '", text, "' (use [::1]:PORT)"));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address '", text, "' (use HOST:PORT, or [IPv6]:PORT)"));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  int port = -1;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in address '", text, "'"));
  }
  if (host == "localhost") host = "127.0.0.1";
  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    address.length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("bad host in address '", text, "' (use a numeric IPv4 or IPv6 address)"));
  }
  return address;
}

absl::StatusOr<SocketAddress> SocketAddress::OfSocket(int fd) {
  SocketAddress address;
  address.length = sizeof address.storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  return address;
}

CompactAddress::CompactAddress(const SocketAddress& address) {
  if (address.length > 0 && address.length <= sizeof storage_ &&
      (address.family() == AF_INET || address.family() == AF_INET6)) {
    std::memcpy(&storage_, &address.storage, address.length);
    length_ = address.length;
  }
}

SocketAddress CompactAddress::Get() const {
  SocketAddress address;
  std::memcpy(&address.storage, &storage_, length_);
  address.length = length_;
  return address;
}

int SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

std::string SocketAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host, sizeof host);
    return absl::StrCat(host, ":", port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host,
              sizeof host);
    return absl::StrCat("[", host, "]:", port());
  }
  return "?";
}

absl::Status SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl O_NONBLOCK");
  }
  return absl::OkStatus();
}

namespace {

bool IsWildcard(const SocketAddress& a) {
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr == htonl(INADDR_ANY);
  }
  return a.family() == AF_INET6 &&
         IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
}

bool IsLoopback(const SocketAddress& a) {
  if (a.family() == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr) >> 24) == 127;
  }
  return a.family() == AF_INET6 &&
         IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
}

bool SameHost(const SocketAddress& a, const SocketAddress& b) {
  if (a.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(&b.storage)->sin_addr.s_addr;
  }
  return IN6_ARE_ADDR_EQUAL(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr,
                            &reinterpret_cast<const sockaddr_in6*>(&b.storage)->sin6_addr);
}

// The status for a failed bind or listen: the code says whether it is
// temporary (see net.h), the message says what to do.
absl::Status BindFailure(int err, const SocketAddress& address) {
  std::string what = absl::StrCat("cannot listen on ", address.ToString(), ": ");
  switch (err) {
    case EADDRINUSE:
      return absl::UnavailableError(absl::StrCat(what, "address already in use"));
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return absl::UnavailableError(absl::StrCat(what, std::strerror(err)));
    case EACCES:
    case EPERM:
      return absl::FailedPreconditionError(absl::StrCat(
          what, "permission denied (a port below net.ipv4.ip_unprivileged_port_start needs "
                "root or CAP_NET_BIND_SERVICE)"));
    case EADDRNOTAVAIL:
      return absl::FailedPreconditionError(
          absl::StrCat(what, "not an address of this host (EADDRNOTAVAIL)"));
    default:
      return absl::FailedPreconditionError(absl::StrCat(what, std::strerror(err)));
  }
}

}  // namespace

bool ListenAddressCovers(const SocketAddress& listen, const SocketAddress& target) {
  if (listen.family() != target.family() || listen.port() != target.port()) return false;
  if (listen.family() != AF_INET && listen.family() != AF_INET6) return false;
  if (SameHost(listen, target)) return true;
  if (IsWildcard(listen)) return IsLoopback(target) || IsWildcard(target);
  // A connect to the wildcard address goes to the loopback address.
  if (IsWildcard(target)) {
    if (listen.family() == AF_INET) {
      return reinterpret_cast<const sockaddr_in*>(&listen.storage)->sin_addr.s_addr ==
             htonl(INADDR_LOOPBACK);
    }
    return IsLoopback(listen);
  }
  return false;
}

bool IsTemporaryBindFailure(const absl::Status& status) { return absl::IsUnavailable(status); }

absl::StatusOr<UniqueFd> BindListener(const SocketAddress& address) {
  UniqueFd fd(socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return BindFailure(errno, address);
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.family() == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd.get(), address.get(), address.length) != 0) return BindFailure(errno, address);
  if (listen(fd.get(), 4096) != 0) return BindFailure(errno, address);
  return fd;
}

absl::StatusOr<UniqueFd> StartConnect(const SocketAddress& address) {
  UniqueFd fd(socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus(errno, "socket");
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd.get(), address.get(), address.length) != 0 && errno != EINPROGRESS) {
    return ErrnoStatus(errno, absl::StrCat("connect to ", address.ToString()));
  }
  return fd;
}

absl::Status SendFds(int socket, const std::string& payload, const std::vector<int>& fds) {
  iovec iov = {const_cast<char*>(payload.data()), payload.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  if (RetryOnEintr([&] { return sendmsg(socket, &msg, MSG_NOSIGNAL); }) < 0) {
    return ErrnoStatus(errno, "sendmsg with descriptors");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, std::vector<UniqueFd>>> ReceiveFds(int socket,
                                                                      size_t max_fds) {
  std::string payload(64 * 1024, '\0');
  iovec iov = {payload.data(), payload.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * max_fds));
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n = RetryOnEintr([&] { return recvmsg(socket, &msg, MSG_CMSG_CLOEXEC); });
  if (n < 0) return ErrnoStatus(errno, "recvmsg with descriptors");
  payload.resize(static_cast<size_t>(n));
  std::vector<UniqueFd> fds;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return absl::DataLossError("descriptor message truncated (too many descriptors)");
  }
  return std::make_pair(std::move(payload), std::move(fds));
}

}  // namespace gateway
