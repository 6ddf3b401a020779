// Endpoint: one process's side of the cluster network, a CAF broker (CAF's network layer) that owns every
// TCP connection of the process, frames Cap'n Proto envelopes over them, runs the token handshake, and hands
// authenticated messages to a Service (the head, a node, a worker, a driver) on the broker's thread.
// Rules:
// - Until a connection has passed the handshake, only handshake envelopes of at most 4 KiB are accepted.
// - Malformed, oversized or unexpected bytes close that connection (logged); every other connection
//   keeps being served.
// - Service callbacks and Endpoint methods run on the broker's thread only; other threads use post().
// - With TLS configured, bytes pass through OpenSSL (memory BIOs) below the framing: a peer that fails the
//   TLS handshake (no certificate, or one the cluster CA did not sign) is closed and logged.
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "runtime/transport/frame.hpp"

struct ssl_ctx_st;

namespace iogrid::runtime::transport {

using ConnId = std::int64_t;

struct Peer {
  ConnId id = 0;
  proto::Role role = proto::Role::NODE;
  std::string name;
  std::string address;      // the remote host
  std::uint16_t port = 0;   // its port (of a connection it made to us: where its NAT, if any, maps it)
  bool outgoing = false;    // we connected to them
  bool authenticated = false;
  std::uint64_t frames_in = 0;
};

class Endpoint;

class Service {
 public:
  virtual ~Service() = default;
  virtual void on_start(Endpoint&) {}
  // The peer passed the handshake; messages from it follow.
  virtual void on_peer(Endpoint&, Peer&) {}
  virtual void on_message(Endpoint&, Peer&, proto::Envelope::Reader msg) = 0;
  // The connection is gone (closed by either side, refused, or a protocol error); `why` says which.
  virtual void on_closed(Endpoint&, Peer&, const std::string& why) {}
  virtual void on_tick(Endpoint&) {}
  // The endpoint stops. A service keeping the endpoint's handle() drops it here: the endpoint owns the service.
  virtual void on_stop(Endpoint&) {}
};

struct EndpointConfig {
  std::string token;                          // the cluster token (never sent)
  std::string name;                           // how this process introduces itself
  std::chrono::milliseconds tick{100};        // period of Service::on_tick
  std::uint32_t frame_limit = kDefaultFrameLimit;
  std::shared_ptr<ssl_ctx_st> tls;            // set: every connection runs TLS first (make_tls_context)
};

class Endpoint {
 public:
  virtual ~Endpoint() = default;
  // Listens on `bind`:`port` (0: any free port); returns the port. Throws iogrid::Error.
  virtual std::uint16_t listen(std::uint16_t port, const std::string& bind) = 0;
  // Connects and starts the handshake as `role`; on_peer or on_closed follows. Throws iogrid::Error when
  // the TCP connection cannot be made.
  // `preamble`: raw bytes sent before anything else (a relay's first line, transport/relay_hello.hpp).
  virtual ConnId connect(const std::string& host, std::uint16_t port, proto::Role role, const std::string& preamble = "") = 0;
  // Connects out, sends `preamble`, then serves the connection as if it had been accepted (the peer at the
  // other end of a relay runs the client's side). Throws iogrid::Error when the TCP connection cannot be made.
  virtual ConnId connect_as_server(const std::string& host, std::uint16_t port, const std::string& preamble) = 0;
  // Takes over a connected socket made elsewhere (a hole-punched or relayed one, transport/punch.hpp) and runs
  // the handshake on it: as `role` when `client`, else as the accepting side. `host`: the peer, for logs.
  virtual ConnId adopt(int fd, const std::string& host, bool client, proto::Role role) = 0;
  virtual void send(ConnId c, capnp::MessageBuilder& msg) = 0;
  virtual void send_frame(ConnId c, const std::string& frame) = 0;
  virtual void close(ConnId c, const std::string& why) = 0;
  virtual Peer* peer(ConnId c) = 0;
  virtual const std::string& name() const = 0;
  virtual caf::actor_system& system() = 0;
  // This endpoint's actor handle (for post() from other threads).
  virtual caf::actor handle() = 0;
  // Stops the endpoint: every connection closes and the broker exits.
  virtual void stop() = 0;
};

caf::actor spawn_endpoint(caf::actor_system& sys, std::shared_ptr<Service> svc, EndpointConfig cfg);
// Runs `fn` on the endpoint's thread.
void post(const caf::actor& endpoint, std::function<void(Endpoint&)> fn);
// Sends an already encoded frame from any thread.
void post_frame(const caf::actor& endpoint, ConnId c, std::string frame);

// "host:port" -> (host, port); throws iogrid::Error with an example on bad input.
std::pair<std::string, std::uint16_t> parse_address(const std::string& address);

}  // namespace iogrid::runtime::transport
