#include "runtime/cluster/tunnel_ends.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <stdexcept>

#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/tcp.hpp"

namespace iogrid::runtime::cluster {

namespace {
constexpr std::chrono::milliseconds kLocalDial{2000};
constexpr std::chrono::milliseconds kRelayDial{5000};
}  // namespace

TunnelEnds::TunnelEnds(std::vector<std::uint16_t> allowed, std::string token)
    : allowed_(allowed.begin(), allowed.end()), token_(std::move(token)) {}

TunnelEnds::~TunnelEnds() {
  std::vector<std::unique_ptr<Tunnel>> all;
  {
    std::lock_guard<std::mutex> g(m_);
    stopping_ = true;
    for (auto& t : tunnels_) {  // wakes the copying threads
      if (t->local >= 0) ::shutdown(t->local, SHUT_RDWR);
      if (t->relay >= 0) ::shutdown(t->relay, SHUT_RDWR);
    }
    all.swap(tunnels_);
  }
  for (auto& t : all)
    if (t->thread.joinable()) t->thread.join();
}

void TunnelEnds::reap() {
  for (auto it = tunnels_.begin(); it != tunnels_.end();) {
    if (!(*it)->done->load()) {
      ++it;
      continue;
    }
    (*it)->thread.join();
    it = tunnels_.erase(it);
  }
}

void TunnelEnds::open(const std::string& relay_host, std::uint16_t relay_port, const std::string& session, std::uint16_t port) {
  std::lock_guard<std::mutex> g(m_);
  if (stopping_) return;
  reap();
  auto t = std::make_unique<Tunnel>();
  t->done = std::make_shared<std::atomic<bool>>(false);
  auto* raw = t.get();
  // Dials happen on the tunnel's thread: the caller (the node's control loop) never waits for them.
  t->thread = std::thread([this, raw, port, session, relay_host, relay_port] {
    std::string local_error, relay_error;
    const bool allowed = allows(port);
    const int local = allowed ? transport::dial_tcp("127.0.0.1", port, kLocalDial, &local_error) : -1;
    const int relay = transport::dial_tcp(relay_host, relay_port, kRelayDial, &relay_error);
    bool stopping;
    {
      std::lock_guard<std::mutex> g2(m_);
      stopping = stopping_;
      raw->local = local;
      raw->relay = relay;
    }
    if (relay < 0) {
      spdlog::warn("tunnel to port {}: cannot reach the relay at {}:{}: {}", port, relay_host, relay_port, relay_error);
    } else if (!stopping) {
      // The relay hears from this node either way: a refused tunnel ends at once, not at the relay's timeout.
      const bool said = transport::write_all(relay, transport::relay_hello("ACCEPT", session, token_));
      if (!allowed) {
        spdlog::warn("tunnel to port {} refused: this node allows tunnels only to the ports given to --allow-tunnel", port);
      } else if (local < 0) {
        spdlog::warn("tunnel to port {} refused: nothing answers at 127.0.0.1:{} ({})", port, port, local_error);
      } else if (said) {
        ++open_;
        spdlog::info("tunnel to port {} open (relay session {})", port, session);
        const auto start = std::chrono::steady_clock::now();
        const auto bytes = transport::splice_tcp(local, relay);
        --open_;
        spdlog::info("tunnel to port {} closed after {:.1f} s, {} bytes", port,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), bytes);
      }
    }
    {
      std::lock_guard<std::mutex> g2(m_);
      if (raw->local >= 0) ::close(raw->local);
      if (raw->relay >= 0) ::close(raw->relay);
      raw->local = raw->relay = -1;
    }
    *raw->done = true;
  });
  tunnels_.push_back(std::move(t));
}

std::vector<std::uint16_t> parse_ports(const std::string& flag, const std::string& list) {
  std::vector<std::uint16_t> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    std::size_t used = 0;
    long v = -1;
    try {
      v = std::stol(item, &used);
    } catch (...) {
    }
    if (used != item.size() || v < 1 || v > 65535)
      throw std::invalid_argument(flag + " takes ports 1-65535 separated by commas (e.g. 8888,22), got '" + item + "'");
    out.push_back(static_cast<std::uint16_t>(v));
  }
  if (out.empty()) throw std::invalid_argument(flag + " needs at least one port");
  return out;
}

}  // namespace iogrid::runtime::cluster
