// The node's side of tunnels (`iogrid tunnel NODE:PORT`, cli/tunnel_command): a port of this machine that its
// owner allows (`iogrid node --allow-tunnel 8888,22`) reached through the head's relay, so that a notebook, SSH or
// a model server behind a NAT can be used from anywhere the cluster's token is held.
// Rules: only allowed ports, checked here as well as on the head; only 127.0.0.1 (a tunnel reaches this machine,
// never another host of its network); each tunnel is logged when it opens and when it closes, with its bytes.
// A tunnel is a relay session: the head asks (RelayDial with a tunnel port), this node dials the local port and
// the relay (an ACCEPT line signed with the token) and copies bytes both ways until either side ends.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace iogrid::runtime::cluster {

class TunnelEnds {
 public:
  TunnelEnds(std::vector<std::uint16_t> allowed, std::string token);
  ~TunnelEnds();  // ends open tunnels and waits for their threads
  TunnelEnds(const TunnelEnds&) = delete;
  TunnelEnds& operator=(const TunnelEnds&) = delete;

  bool allows(std::uint16_t port) const { return allowed_.count(port) > 0; }
  const std::set<std::uint16_t>& allowed() const { return allowed_; }
  // Opens the tunnel of relay session `session` to local port `port` (returns at once; a thread of its own).
  void open(const std::string& relay_host, std::uint16_t relay_port, const std::string& session, std::uint16_t port);
  std::size_t open_now() const { return open_.load(); }

 private:
  struct Tunnel {
    int local = -1, relay = -1;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void reap();  // under m_

  std::set<std::uint16_t> allowed_;
  std::string token_;
  mutable std::mutex m_;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Tunnel>> tunnels_;
  std::atomic<std::size_t> open_{0};
};

// "8888,22" -> ports; throws std::invalid_argument naming the bad item.
std::vector<std::uint16_t> parse_ports(const std::string& flag, const std::string& list);

}  // namespace iogrid::runtime::cluster
