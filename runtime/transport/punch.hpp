// Hole punching: two processes that reach each other only through the head's relay (neither can be dialled)
// try a TCP simultaneous open at the time the relay tells both, and use that direct connection when it works.
//
// How (runtime/cluster/relay_server.hpp splices the two legs):
//   1. The dialer connects to the relay from a reusable port L (SO_REUSEPORT: transport/tcp.hpp) and sends
//      a PUNCH line (transport/relay_hello.hpp) instead of CONNECT; the target, asked over its control
//      connection, connects from a reusable port M and sends ACCEPT as always.
//   2. The relay has seen each leg from where its NAT maps it (address A:PL, B:PM) and measured each leg's
//      round trip (TCP_INFO). It writes each side a PEER line: the other's observed address and port, when to
//      start (so that both SYNs leave at about the same moment: the nearer side waits half the difference of
//      the round trips) and how long to try. A window of 0 says "do not try" (a loopback peer, or both behind
//      one address: hairpinning rarely works); then both go straight to step 4.
//   3. Each side connects from its own port (L, M) to the other's observed address, retrying after a refusal,
//      until connected or the window ends. A NAT that keeps a port's mapping for every destination (a "cone":
//      Linux masquerade without fully-random, most home routers) lets the peer's SYN in once its own SYN has
//      gone out: the two SYNs cross and TCP's simultaneous open connects them. A symmetric NAT (a new port per
//      destination) or a router that answers the first SYN with a reset defeats it: the pair stays relayed.
//   4. Over the relayed connection, each side says 'D' (my punch connected) or 'R', then reads the other's.
//      Both 'D': both close the relayed connection and use the punched one; otherwise both close the punched
//      one and keep the relayed one. Either way the
//      connection carries the ordinary protocol from its first byte (token handshake, TLS when configured):
//      a punched connection is authenticated end to end like a direct one.
// Rules: neither side decides alone; every wait is bounded (the PEER line and the answer by `timeout`,
// the punch by the relay's window, at most kMaxPunchWindow).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace iogrid::runtime::transport {

inline constexpr std::chrono::milliseconds kMinPunchWindow{1000};
inline constexpr std::chrono::milliseconds kMaxPunchWindow{2000};

// What the relay tells each side of a punch session (step 2).
struct PunchPlan {
  std::string host;  // the peer as the relay sees it (numeric)
  std::uint16_t port = 0;
  std::chrono::milliseconds start_in{0};  // wait this long before the first SYN
  std::chrono::milliseconds window{0};    // then try for this long; 0: do not try
};

//   IOGRID-RELAY/1 PEER <host> <port> <start_in_ms> <window_ms>\n
std::string punch_line(const PunchPlan& p);
std::optional<PunchPlan> parse_punch_line(const std::string& line);  // without its '\n'

// The relay's plan for one side, from the other side's observed address and both legs' round trips (step 2).
// `mine`/`theirs`: this side's and the peer's observed addresses (the window is 0 when they are equal or
// either is a loopback address, unless `loopback_ok`: tests on one machine).
PunchPlan plan_punch(const std::string& mine, const std::string& theirs, std::uint16_t their_port,
                     std::chrono::microseconds my_rtt, std::chrono::microseconds their_rtt, bool loopback_ok = false);

// A TCP socket's smoothed round trip as the kernel measured it (0 when unknown).
std::chrono::microseconds tcp_rtt(int fd);

// Step 3: connects from `local_port` to the plan's peer; a connected blocking socket, or -1 with `*error` set.
int punch_tcp(std::uint16_t local_port, const PunchPlan& plan, std::string* error);

// A connection made through the relay: the punched one when the punch worked, else the relayed one.
struct RelayLink {
  int fd = -1;            // -1: failed (`error` says why)
  bool punched = false;   // a direct connection made by hole punching
  bool tried = false;     // a punch was tried (the relay gave a window)
  bool reached = false;   // the relay was dialled (a failure after it: the relay refused, or the peer never came)
  std::string refused;    // the relay's typed refusal (relay_hello.hpp: "no-target", "nobody-came"...); "" none
  std::string error;
};

// The dialer's side (steps 1-4): reaches `target` through the relay at relay_host:relay_port; `punch` false
// sends a plain CONNECT (no punch: the pair is known not to punch).
RelayLink relay_connect(const std::string& relay_host, std::uint16_t relay_port, const std::string& target,
                        const std::string& token, bool punch, std::chrono::milliseconds timeout);
// The target's side, asked to meet a dialer in `session`; `punch`: the dialer asked for a punch.
RelayLink relay_accept(const std::string& relay_host, std::uint16_t relay_port, const std::string& session,
                       const std::string& token, bool punch, std::chrono::milliseconds timeout);
// Two peers that agreed on `name` (a word: letters, digits, - _ . :) meet at the relay, punching first; the
// relay keeps the first waiting up to its hello timeout.
RelayLink relay_meet(const std::string& relay_host, std::uint16_t relay_port, const std::string& name,
                     const std::string& token, std::chrono::milliseconds timeout);

}  // namespace iogrid::runtime::transport
