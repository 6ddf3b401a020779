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
#pragma once

#include <atomic>
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
};

class DataServer {
 public:
  using Lookup = std::function<core::BufferPtr(std::uint64_t key)>;  // nullptr: missing
  using Erase = std::function<void(std::uint64_t key)>;
  DataServer(std::string token, std::string bind, Lookup lookup, Erase erase, std::shared_ptr<ssl_ctx_st> tls = nullptr);
  ~DataServer();
  std::uint16_t port() const;

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
  // address (IPv4 or IPv6).
  core::BufferPtr fetch(const std::string& host, std::uint16_t port, std::uint64_t key, std::uint64_t expected_size = 0);
  // Frees an object on its server, in the background (best effort: a gone server has freed it anyway).
  void erase_later(const std::string& host, std::uint16_t port, std::uint64_t key);
  TransferStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// This process's client (created on first use with `token`); nullptr until set.
void set_process_data_client(std::shared_ptr<DataClient> c);
std::shared_ptr<DataClient> process_data_client();

}  // namespace iogrid::runtime::transport
