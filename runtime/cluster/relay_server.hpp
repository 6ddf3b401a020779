// RelayServer: the head's relay. A process that cannot dial a peer (a worker and a driver behind a NAT) dials
// the relay instead, names the peer (a CONNECT line, transport/relay_hello.hpp), and the relay asks the peer,
// over the control connection the peer keeps to the head, to dial the relay too (an ACCEPT line with the
// session the relay made up); the relay then copies bytes both ways until either side closes. The two peers
// speak the ordinary protocol through it, end to end (token handshake, TLS when configured): the relay sees
// the first lines and then only ciphertext or frames it does not read.
// Rules: a first line must arrive within 10 s and be signed with the cluster token, else the connection is
// closed (and counted as refused); a CONNECT whose target does not dial in within 10 s is closed; a session
// closes both sides when either ends, when it carried `max_bytes` (0: no limit), or after `idle` without a byte
// (0: never). A PUNCH line (instead of CONNECT) asks for hole punching: the target is asked to dial in ready
// for it, and each side first gets a PEER line (where the other is seen from, when to try: transport/punch.hpp).
// Tunnels (targets "tunnel:NODE:PORT") are logged when spliced and listed in stats() while open.
// The head runs one; so does any node its operator marks as a relay (`iogrid node --relay`), whose ask_target
// forwards to the head (which knows the targets) and whose refusals come back through drop().
// Thread: one of its own (Asio); `ask_target` is called on it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace iogrid::runtime::cluster {

struct RelayOptions {
  std::string token;
  std::string bind = "0.0.0.0";
  std::uint16_t port = 0;                  // 0: any free port
  std::uint64_t max_bytes = 0;             // per session, both ways together; 0: no limit
  std::chrono::seconds idle{0};            // 0: no idle limit
  std::chrono::seconds hello_timeout{10};  // first line, and the target dialling in
  bool punch_loopback = false;             // tests: plan hole punches between loopback addresses too
  // Asks `target` to dial in with `session` (`punch`: ready to punch); false when no such target is connected
  // (refused at once).
  std::function<bool(const std::string& target, const std::string& session, bool punch)> ask_target;
};

// An open session whose target is a tunnel ("tunnel:NODE:PORT", cluster/tunnel_ends.hpp): listed for the status.
struct RelayTunnel {
  std::string target, from;  // the target's name; the dialer's address as the relay sees it
  double seconds = 0;        // open for
  std::uint64_t bytes = 0;
};

struct RelayStats {
  std::uint64_t sessions = 0, active = 0, refused = 0, bytes = 0;
  std::uint64_t punches = 0;  // sessions whose two sides were told to try a direct connection
  std::vector<RelayTunnel> tunnels;
};

class RelayServer {
 public:
  explicit RelayServer(RelayOptions opts);  // listens at once; throws iogrid::Error when it cannot
  ~RelayServer();                           // closes every connection and joins its thread
  RelayServer(const RelayServer&) = delete;
  RelayServer& operator=(const RelayServer&) = delete;
  std::uint16_t port() const;
  RelayStats stats() const;
  // Closes the dialer waiting for `session` (its target is unknown after all: an operator's relay learns that
  // from the head after ask_target said yes); counted as refused. Any thread; nothing when no such session waits.
  void drop(const std::string& session, const std::string& why);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iogrid::runtime::cluster
