// The relay's first line: what a process sends the head's relay port before anything else, to be spliced to a
// peer it cannot dial (runtime/cluster/relay_server.hpp). The rest of the connection is the ordinary protocol
// (token handshake, TLS when configured) end to end between the two peers: the relay sees only these lines and
// then bytes it copies.
//   IOGRID-RELAY/1 CONNECT <target> <nonce> <mac>\n   a dialer: splice me to <target>: a job's driver ("job-N"),
//                                                   or a process's data plane ("data-job:job-N", "data-node:N")
//   IOGRID-RELAY/1 PUNCH <target> <nonce> <mac>\n    the same, and let us try a direct connection first
//                                                   (hole punching: transport/punch.hpp)
//   IOGRID-RELAY/1 ACCEPT <session> <nonce> <mac>\n   the target, asked over its control connection: I am here
//   IOGRID-RELAY/1 MEET <name> <nonce> <mac>\n       two peers that agreed on a name (a collective group's link):
//                                                   the second to come is spliced to the first, punching first
// <mac> = hex HMAC-SHA256(cluster token, "relay|" verb "|" id "|" nonce): only cluster members use the relay.
// The relay's refusal of a signed PUNCH or MEET (whose sender reads a line from the relay before anything else,
// the PEER line of transport/punch.hpp) is typed, the connection closed after it:
//   IOGRID-RELAY/1 REFUSED <code> <reason...>\n     code: no-target (no such process), no-answer (the target did
//                                                   not dial in), nobody-came (MEET), not-punchable (a tunnel)
// An unsigned line, a CONNECT (whose sender reads the peer's protocol next) and an ACCEPT are only closed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace iogrid::runtime::transport {

inline constexpr std::size_t kRelayHelloMax = 256;

// The names processes are known by at the relay (besides a driver's own job id): one place for every side.
inline std::string data_node_relay_name(std::uint32_t node_index) { return "data-node:" + std::to_string(node_index); }
inline std::string data_job_relay_name(const std::string& job) { return "data-job:" + job; }
// A worker process that submits tasks of its own (a nested owner), by its connection to the head.
inline std::string nested_owner_relay_name(const std::string& job, std::uint64_t conn) {
  return "owner:" + job + ":" + std::to_string(conn);
}
inline std::string tunnel_relay_name(const std::string& node, std::uint16_t port) {
  return "tunnel:" + node + ":" + std::to_string(port);
}

std::string relay_hello(const std::string& verb, const std::string& id, const std::string& token);

struct RelayHello {
  std::string verb, id;
};
// The line (without its '\n'), checked against the token; nullopt when malformed or not signed with it.
std::optional<RelayHello> parse_relay_hello(const std::string& line, const std::string& token);

// A typed refusal (with its '\n'; the reason on one line), and its reading: nullopt when `line` is not one.
std::string relay_refusal(const std::string& code, const std::string& reason);
struct RelayRefusal {
  std::string code, reason;
};
std::optional<RelayRefusal> parse_relay_refusal(const std::string& line);

}  // namespace iogrid::runtime::transport
