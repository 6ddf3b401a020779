// Liveness datagrams: a node daemon's "still running" on UDP, apart from its control connection. A node whose
// event loop is backlogged or starved of CPU (its machine saturated with user work and processes starting) still
// sends these from a thread that does nothing else, so the head does not declare it dead while it runs; a node
// that is stopped (SIGSTOP) or gone sends nothing and is declared dead as before. Each beat carries how long ago
// the node's event loop last ran: a loop stuck for longer than the head accepts (a deadlock) does not count.
// Datagram (36 bytes): "IGHB", u32 node index, u64 sequence, u32 loop age (ms), then the first 16 bytes of
// HMAC-SHA256(token, the 20 bytes before). Beats go to the head's control port number, on UDP. Best effort:
// where UDP does not pass, the control connection's heartbeats decide alone.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

namespace iogrid::runtime::transport {

struct LivenessBeat {
  std::uint32_t node = 0;
  std::uint64_t seq = 0;
  std::uint32_t loop_age_ms = 0;
};
std::string encode_beat(const std::string& token, const LivenessBeat& b);
std::optional<LivenessBeat> decode_beat(const std::string& token, const std::string& bytes);  // nullopt: not ours

// The head's side: receives beats on UDP `bind`:`port` (throws iogrid::Error when it cannot bind).
class LivenessListener {
 public:
  using Clock = std::chrono::steady_clock;
  LivenessListener(std::string token, const std::string& bind, std::uint16_t port);
  ~LivenessListener();
  // When node `node` was last heard with its event loop younger than `max_loop_age`; nullopt: never.
  std::optional<Clock::time_point> heard(std::uint32_t node, std::chrono::milliseconds max_loop_age) const;
  std::uint16_t port() const;  // the UDP port bound (useful with port 0)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The node's side: a thread sending a beat every `period` to host:port once set_node() named the node.
class LivenessSender {
 public:
  LivenessSender(std::string token, std::string host, std::uint16_t port, std::chrono::milliseconds period);
  ~LivenessSender();
  void set_node(std::optional<std::uint32_t> index);  // nullopt: not joined (nothing is sent)
  void loop_ticked();                                   // the node's event loop ran just now

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iogrid::runtime::transport
