#include "runtime/transport/reachability.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace iogrid::runtime::transport {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// The first IPv4/IPv6 address of host:port for `type` sockets.
std::unique_ptr<addrinfo, void (*)(addrinfo*)> resolve(const std::string& host, std::uint16_t port, int type) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = type;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) res = nullptr;
  return {res, [](addrinfo* a) {
            if (a) ::freeaddrinfo(a);
          }};
}

}  // namespace

const char* to_string(Inbound i) {
  switch (i) {
    case Inbound::open: return "open";
    case Inbound::closed: return "closed";
    default: return "unknown";
  }
}

const char* path_of(const Reachability& r) {
  if (r.inbound == Inbound::open) return "public";
  if (r.inbound == Inbound::unknown) return "checking";
  return !r.local_host.empty() && r.local_host != r.observed_host ? "nat" : "firewalled";
}

std::string local_address_towards(const std::string& host, std::uint16_t port) {
  auto ai = resolve(host, port, SOCK_DGRAM);
  if (!ai) return "";
  Fd s{::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0 || ::connect(s.fd, ai->ai_addr, ai->ai_addrlen) != 0) return "";
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  const void* a = local.ss_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr)
                                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr);
  return ::inet_ntop(local.ss_family, a, buf, sizeof buf) ? std::string(buf) : std::string();
}

DialBacks::DialBacks(std::chrono::milliseconds timeout) : timeout_(timeout), thread_([this] { loop(); }) {}

DialBacks::~DialBacks() {
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void DialBacks::dial(std::string host, std::uint16_t port, std::function<void(bool)> done) {
  {
    std::lock_guard<std::mutex> g(m_);
    queue_.push_back({std::move(host), port, std::move(done)});
  }
  cv_.notify_one();
}

void DialBacks::loop() {
  for (;;) {
    std::vector<Job> batch;
    {
      std::unique_lock<std::mutex> g(m_);
      cv_.wait(g, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      while (!queue_.empty() && batch.size() < kMaxInFlight) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // Start every connect; those that finish (or fail) at once are decided now, the rest by one poll loop.
    std::vector<Fd> socks(batch.size());
    std::vector<int> result(batch.size(), -1);  // -1 pending, 0 refused or timed out, 1 accepted
    for (std::size_t i = 0; i < batch.size(); ++i) {
      auto ai = resolve(batch[i].host, batch[i].port, SOCK_STREAM);
      if (!ai || batch[i].port == 0) {
        result[i] = 0;
        continue;
      }
      socks[i].fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (socks[i].fd < 0) result[i] = 0;
      else if (::connect(socks[i].fd, ai->ai_addr, ai->ai_addrlen) == 0) result[i] = 1;
      else if (errno != EINPROGRESS) result[i] = 0;
    }
    const auto until = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      std::vector<pollfd> fds;
      std::vector<std::size_t> which;
      for (std::size_t i = 0; i < batch.size(); ++i)
        if (result[i] < 0) {
          fds.push_back({socks[i].fd, POLLOUT, 0});
          which.push_back(i);
        }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (fds.empty() || left.count() <= 0) break;
      if (::poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR) break;
      for (std::size_t k = 0; k < fds.size(); ++k) {
        if (!fds[k].revents) continue;
        int err = 0;
        socklen_t len = sizeof err;
        result[which[k]] = ::getsockopt(fds[k].fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 1 : 0;
      }
    }
    socks.clear();  // closed before anyone hears
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(result[i] == 1);
  }
}

}  // namespace iogrid::runtime::transport
