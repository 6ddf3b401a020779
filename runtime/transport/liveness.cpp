#include "runtime/transport/liveness.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>

#include "iogrid/core/errors.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid::runtime::transport {

namespace {

constexpr char kMagic[4] = {'I', 'G', 'H', 'B'};
constexpr std::size_t kBody = 20, kMac = 16, kSize = kBody + kMac;

void put(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::uint64_t get(const std::string& in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<unsigned char>(in[at + std::size_t(i)])) << (8 * i);
  return v;
}

}  // namespace

std::string encode_beat(const std::string& token, const LivenessBeat& b) {
  std::string out(kMagic, 4);
  put(out, b.node, 4);
  put(out, b.seq, 8);
  put(out, b.loop_age_ms, 4);
  out += hmac_sha256(token, out).substr(0, kMac);
  return out;
}

std::optional<LivenessBeat> decode_beat(const std::string& token, const std::string& bytes) {
  if (bytes.size() != kSize || std::memcmp(bytes.data(), kMagic, 4) != 0) return std::nullopt;
  if (!equal_constant_time(bytes.substr(kBody), hmac_sha256(token, bytes.substr(0, kBody)).substr(0, kMac))) return std::nullopt;
  return LivenessBeat{static_cast<std::uint32_t>(get(bytes, 4, 4)), get(bytes, 8, 8), static_cast<std::uint32_t>(get(bytes, 16, 4))};
}

// ---- head ----

struct LivenessListener::Impl {
  std::string token;
  int fd = -1;
  std::atomic<bool> stop{false};
  std::thread thread;
  mutable std::mutex m;
  struct Last {
    std::uint64_t seq = 0;
    Clock::time_point at{};
    std::uint32_t loop_age_ms = 0;
  };
  std::unordered_map<std::uint32_t, Last> last;

  void run() {
    char buf[64];
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) continue;
      auto beat = decode_beat(token, std::string(buf, static_cast<std::size_t>(n)));
      if (!beat) continue;
      std::lock_guard<std::mutex> g(m);
      auto& l = last[beat->node];
      // A restarted daemon starts its sequence again: a lower one resets after a quiet second.
      if (beat->seq <= l.seq && Clock::now() - l.at < std::chrono::seconds(1)) continue;
      l = Last{beat->seq, Clock::now(), beat->loop_age_ms};
    }
  }
};

LivenessListener::LivenessListener(std::string token, const std::string& bind, std::uint16_t port)
    : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (impl_->fd < 0) throw core::Error("iogrid: cannot open a UDP socket for node liveness");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, bind.empty() ? "0.0.0.0" : bind.c_str(), &a.sin_addr) != 1 ||
      ::bind(impl_->fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(impl_->fd);
    throw core::Error("iogrid: cannot receive node liveness on UDP " + bind + ":" + std::to_string(port) + ": " +
                      std::strerror(errno));
  }
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

LivenessListener::~LivenessListener() {
  impl_->stop = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->fd);
}

std::optional<LivenessListener::Clock::time_point> LivenessListener::heard(std::uint32_t node,
                                                                           std::chrono::milliseconds max_loop_age) const {
  std::lock_guard<std::mutex> g(impl_->m);
  auto it = impl_->last.find(node);
  if (it == impl_->last.end() || std::chrono::milliseconds(it->second.loop_age_ms) > max_loop_age) return std::nullopt;
  return it->second.at;
}

std::uint16_t LivenessListener::port() const {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(impl_->fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// ---- node ----

struct LivenessSender::Impl {
  std::string token, host;
  std::uint16_t port = 0;
  std::chrono::milliseconds period{250};
  std::atomic<std::int64_t> node{-1};
  std::atomic<std::int64_t> last_tick_ns{0};
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }

  void run() {
    int fd = -1;
    sockaddr_storage to{};
    socklen_t to_len = 0;
    std::uint64_t seq = 0;
    std::unique_lock<std::mutex> g(m);
    while (!cv.wait_for(g, period, [this] { return stop; })) {
      const auto index = node.load();
      if (index < 0) continue;
      if (fd < 0) {  // resolved once it is needed (and again after a failure)
        addrinfo hints{}, *res = nullptr;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) continue;
        fd = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        std::memcpy(&to, res->ai_addr, res->ai_addrlen);
        to_len = static_cast<socklen_t>(res->ai_addrlen);
        ::freeaddrinfo(res);
        if (fd < 0) continue;
      }
      const auto age_ns = std::max<std::int64_t>(0, now_ns() - last_tick_ns.load());
      LivenessBeat b{static_cast<std::uint32_t>(index), ++seq,
                     static_cast<std::uint32_t>(std::min<std::int64_t>(age_ns / 1000000, 0xffffffff))};
      auto bytes = encode_beat(token, b);
      if (::sendto(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&to), to_len) < 0) {
        ::close(fd);
        fd = -1;
      }
    }
    if (fd >= 0) ::close(fd);
  }
};

LivenessSender::LivenessSender(std::string token, std::string host, std::uint16_t port, std::chrono::milliseconds period)
    : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  impl_->host = std::move(host);  // a name or an address: resolved by getaddrinfo when first needed
  impl_->port = port;
  impl_->period = period;
  impl_->last_tick_ns = Impl::now_ns();
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

LivenessSender::~LivenessSender() {
  {
    std::lock_guard<std::mutex> g(impl_->m);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void LivenessSender::set_node(std::optional<std::uint32_t> index) { impl_->node = index ? std::int64_t(*index) : -1; }

void LivenessSender::loop_ticked() { impl_->last_tick_ns = Impl::now_ns(); }

}  // namespace iogrid::runtime::transport
