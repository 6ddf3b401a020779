// The data plane: bulk object bytes between processes over Boost.Asio TCP, separate from the control plane.
// A DataServer serves the objects of one store; DataClient pulls them (and frees them) from any server.
// Protocol (binary, little-endian): the server sends a 32-byte nonce, the client answers
// HMAC-SHA256(token, "data|" nonce), then requests follow on the same connection:
//   GET    [u8 1][u64 key]  ->  [u8 status][u64 size] then the object in chunks of 4 MiB, each chunk followed
//                               by its CRC-32; chunks are streamed back to back (pipelined, no per-chunk ack)
//   DELETE [u8 2][u64 key]  ->  [u8 status]
// status: 0 ok, 1 no such object. A wrong proof, an unknown op or a short read closes the connection.
// A CRC mismatch fails the fetch with iogrid::Error (the bytes were damaged on the way). With TLS configured
// the connection runs TLS (mutual, the cluster CA) before the token challenge.
// Behind a NAT: a server that cannot be dialled is reached through the head's relay
// (runtime/cluster/relay_server.hpp). A client whose direct dial fails (refused, unreachable, or no answer within
// the direct timeout) dials the relay with a CONNECT line naming the server's relay name; the head asks the
// server's process to dial the relay too (serve_dialled), and the two are spliced. Everything after the relay's
// line is the protocol above, end to end (TLS included): the relay sees ciphertext when TLS is on. Through the
// relay the two first try a hole punch (transport/punch.hpp): a pair whose NATs allow it ends up connected
// directly; a server the punch failed for is reached through the relay without trying again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "iogrid/core/buffer.hpp"

struct ssl_ctx_st;

namespace iogrid::runtime::transport {

struct TransferStats {
  std::uint64_t bytes = 0;
  double seconds = 0;       // time spent inside fetches
  std::uint64_t fetches = 0;
  std::uint64_t last_bytes = 0;   // the most recent fetch
  double last_seconds = 0;
  std::uint64_t relayed = 0;      // connections that went through the head's relay
  double last_fallback_seconds = 0;  // the latest relayed connection: from the failed direct dial to it working
  std::uint64_t punched = 0;      // connections made direct by hole punching (transport/punch.hpp)
};

class DataServer {
 public:
  using Lookup = std::function<core::BufferPtr(std::uint64_t key)>;  // nullptr: missing
  using Erase = std::function<void(std::uint64_t key)>;
  DataServer(std::string token, std::string bind, Lookup lookup, Erase erase, std::shared_ptr<ssl_ctx_st> tls = nullptr);
  ~DataServer();
  std::uint16_t port() const;
  // Dials the head's relay at host:port, says it is the target of `session` (an ACCEPT line signed with the
  // token), and serves what comes through like an incoming connection. Returns at once (a thread of its own).
  // `punch`: the puller asked for hole punching (transport/punch.hpp): served directly when it works.
  void serve_dialled(const std::string& host, std::uint16_t port, const std::string& session, bool punch = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class DataClient {
 public:
  explicit DataClient(std::string token, std::shared_ptr<ssl_ctx_st> tls = nullptr);
  ~DataClient();
  // Pulls one object; throws iogrid::Error when the server cannot be reached, has no such object, announces
  // another size than `expected_size` (when not 0), or the bytes fail their checksum. `host` is a name or an
  // address (IPv4 or IPv6). `relay`: the server's name at the head's relay, tried when host:port cannot be
  // dialled (and this client knows the relay: set_relay); "" never.
  core::BufferPtr fetch(const std::string& host, std::uint16_t port, std::uint64_t key, std::uint64_t expected_size = 0,
                        const std::string& relay = "");
  // Frees an object on its server, in the background (best effort: a gone server has freed it anyway).
  void erase_later(const std::string& host, std::uint16_t port, std::uint64_t key, const std::string& relay = "");
  // The head's relay (port 0: none), and how long a direct dial may take before the relay is tried.
  void set_relay(const std::string& host, std::uint16_t port,
                 std::chrono::milliseconds direct_timeout = std::chrono::milliseconds(1500));
  // Hole punching through the relay (on by default); off: every relayed pull stays relayed (benchmarks).
  void set_punch(bool on);
  // The head's relay as set_relay set it (port 0: none), and the cluster token: for others that meet there.
  std::pair<std::string, std::uint16_t> relay() const;
  const std::string& token() const;
  TransferStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// This process's client (created on first use with `token`); nullptr until set.
void set_process_data_client(std::shared_ptr<DataClient> c);
std::shared_ptr<DataClient> process_data_client();

}  // namespace iogrid::runtime::transport
