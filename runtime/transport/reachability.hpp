// Reachability: how the head sees a process, and whether it can be dialled. A process behind a NAT is seen from
// its router's address (and a port the router chose), not the one it has itself; a process behind a NAT or a
// firewall cannot be dialled at all. The head learns the first from the connection the process made to it (its
// observed address and port) beside the address the process reports for itself (the interface it reaches the
// head through), and the second by dialling the process's data port back once it has joined.
// Rules: "public" = dialled back; "nat" = not dialled back and seen from another address than its own;
// "firewalled" = not dialled back, seen from its own address; "checking" until the dial-back ends (at most
// kDialBackTimeout). Loopback addresses are taken as they are (a process on the head's machine).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace iogrid::runtime::transport {

inline constexpr std::chrono::milliseconds kDialBackTimeout{1500};

enum class Inbound : std::uint8_t { unknown, open, closed };

struct Reachability {
  std::string observed_host;      // as the head sees it
  std::uint16_t observed_port = 0;
  std::string local_host;         // as the process sees itself (empty: it did not say)
  std::uint16_t data_port = 0;    // where it listens (0: nothing to dial back)
  Inbound inbound = Inbound::unknown;
};

// "public", "nat", "firewalled" or "checking" (see the rules above).
const char* path_of(const Reachability& r);
const char* to_string(Inbound i);

// The address of this machine's interface that traffic to host:port leaves through (no packet is sent);
// empty when there is no route.
std::string local_address_towards(const std::string& host, std::uint16_t port);

// Dial-backs many at once: a thread of its own connects to every queued host:port in parallel (non-blocking
// sockets, one poll) and calls `done(accepted)` on that thread after at most `timeout` each. A head with 10,000
// firewalled nodes joining waits ~kDialBackTimeout per batch of kMaxInFlight, not per node.
class DialBacks {
 public:
  static constexpr std::size_t kMaxInFlight = 512;
  explicit DialBacks(std::chrono::milliseconds timeout = kDialBackTimeout);
  ~DialBacks();  // drops what was not dialled yet (its `done` is not called)
  DialBacks(const DialBacks&) = delete;
  DialBacks& operator=(const DialBacks&) = delete;
  void dial(std::string host, std::uint16_t port, std::function<void(bool)> done);

 private:
  struct Job {
    std::string host;
    std::uint16_t port;
    std::function<void(bool)> done;
  };
  void loop();
  std::chrono::milliseconds timeout_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace iogrid::runtime::transport
