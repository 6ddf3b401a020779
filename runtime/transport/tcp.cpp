#include "runtime/transport/tcp.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace iogrid::runtime::transport {

int reusable_socket(int family, std::uint16_t port, int* err) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  const int one = 1;
  sockaddr_storage local{};  // the wildcard address of the family
  local.ss_family = static_cast<sa_family_t>(family);
  if (family == AF_INET) reinterpret_cast<sockaddr_in*>(&local)->sin_port = htons(port);
  else reinterpret_cast<sockaddr_in6*>(&local)->sin6_port = htons(port);
  const socklen_t len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&local), len) != 0) {
    *err = errno;
    ::close(fd);
    return -1;
  }
  return fd;
}

int dial_tcp(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string* error,
             bool reusable) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto service = std::to_string(port);
  if (int r = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); r != 0) {
    if (error) *error = ::gai_strerror(r);
    return -1;
  }
  int err = 0;
  for (auto* a = found; a; a = a->ai_next) {
    // Reusable: bound first to a port the kernel picks (0), so that later sockets can bind it too.
    int fd = reusable ? reusable_socket(a->ai_family, 0, &err)
                      : ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      if (!reusable) err = errno;
      continue;
    }
    err = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int r;
        do r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        while (r < 0 && errno == EINTR);
        if (r == 0) {
          err = ETIMEDOUT;
        } else if (r < 0) {
          err = errno;
        } else {
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err == 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      ::freeaddrinfo(found);
      return fd;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (error) *error = std::strerror(err ? err : EHOSTUNREACH);
  return -1;
}

std::uint16_t local_port_of(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
  return 0;
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

bool read_line(int fd, std::string* line, std::size_t max, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  line->clear();
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_readable(fd, left)) return false;
    char c;
    const ssize_t got = ::recv(fd, &c, 1, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    if (c == '\n') return true;
    if (line->size() >= max) return false;
    line->push_back(c);
  }
}

bool write_all(int fd, const std::string& bytes) {
  for (std::size_t off = 0; off < bytes.size();) {
    const ssize_t w = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

std::uint64_t splice_tcp(int a, int b) {
  std::array<char, 64 * 1024> buf;
  std::uint64_t copied = 0;
  bool open[2] = {true, true};  // a -> b, b -> a still carrying
  const int fds[2] = {a, b};
  while (open[0] || open[1]) {
    pollfd p[2];
    nfds_t n = 0;
    int which[2];
    for (int d = 0; d < 2; ++d)
      if (open[d]) {
        p[n] = {fds[d], POLLIN, 0};
        which[n++] = d;
      }
    if (::poll(p, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const int d = which[i];
      const ssize_t got = ::read(fds[d], buf.data(), buf.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return copied;  // a reset: both ends go (the caller closes them)
      if (got == 0) {              // end of stream: passed on as a half-close
        open[d] = false;
        ::shutdown(fds[1 - d], SHUT_WR);
        continue;
      }
      for (ssize_t off = 0; off < got;) {
        const ssize_t w = ::send(fds[1 - d], buf.data() + off, static_cast<std::size_t>(got - off), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return copied;
        off += w;
      }
      copied += static_cast<std::uint64_t>(got);
    }
  }
  return copied;
}

}  // namespace iogrid::runtime::transport
