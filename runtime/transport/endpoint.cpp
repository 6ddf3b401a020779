#include "runtime/transport/endpoint.hpp"

#include "iogrid/core/buffer.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <unordered_map>

#include "common.capnp.h"
#include "iogrid/core/errors.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid::runtime::transport::detail {
using RunFn = std::shared_ptr<std::function<void(Endpoint&)>>;
}
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(iogrid::runtime::transport::detail::RunFn)

namespace iogrid::runtime::transport {

namespace {

using detail::RunFn;
using run_atom = caf::atom_constant<caf::atom("ep_run")>;
using frame_atom = caf::atom_constant<caf::atom("ep_frame")>;
using tick_atom = caf::atom_constant<caf::atom("ep_tick")>;

const char* role_name(proto::Role r) {
  switch (r) {
    case proto::Role::NODE: return "node";
    case proto::Role::DRIVER: return "driver";
    case proto::Role::WORKER: return "worker";
    case proto::Role::CLI: return "cli";
  }
  return "peer";
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

struct Conn {
  caf::io::connection_handle hdl;
  std::unique_ptr<SSL, SslFree> ssl;   // TLS: bytes pass through it (memory BIOs)
  std::string plain_out;                // TLS: plaintext waiting for the handshake to finish
  Peer peer;
  FrameDecoder decoder;
  std::string client_nonce;   // outgoing: ours; incoming: theirs
  std::string server_nonce;
  bool hello_seen = false;
  bool server_proven = false;
  bool closing = false;
};

class EndpointImpl final : public Endpoint {
 public:
  EndpointImpl(caf::io::broker* self, std::shared_ptr<Service> svc, EndpointConfig cfg)
      : self_(self), svc_(std::move(svc)), cfg_(std::move(cfg)) {}

  std::uint16_t listen(std::uint16_t port, const std::string& bind) override {
    auto r = self_->add_tcp_doorman(port, bind.empty() ? nullptr : bind.c_str(), true);
    if (!r)
      throw core::Error("iogrid: cannot listen on " + (bind.empty() ? std::string("*") : bind) + ":" + std::to_string(port) +
                  ": " + self_->system().render(r.error()));
    return r->second;
  }

  ConnId connect(const std::string& host, std::uint16_t port, proto::Role role, const std::string& preamble) override {
    auto r = self_->add_tcp_scribe(host, port);
    if (!r)
      throw core::Error("iogrid: cannot connect to " + host + ":" + std::to_string(port) + ": " + self_->system().render(r.error()));
    if (!preamble.empty()) self_->write(*r, preamble.size(), preamble.data());  // before TLS and the handshake
    return start_client(*r, host, role);
  }

  ConnId adopt(int fd, const std::string& host, bool client, proto::Role role) override {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);  // the broker's multiplexer reads it
    auto hdl = self_->add_scribe(fd);
    if (client) return start_client(hdl, host, role);
    return add(hdl, host, false).peer.id;
  }

  // An outgoing connection: TLS (when configured) and the handshake, this side first.
  ConnId start_client(caf::io::connection_handle hdl, const std::string& host, proto::Role role) {
    auto& c = add(hdl, host, true);
    c.peer.outgoing = true;
    c.peer.role = role;
    c.client_nonce = random_bytes(32);
    capnp::MallocMessageBuilder msg;
    auto h = msg.initRoot<proto::Envelope>().initHello();
    h.setProtocolVersion(proto::PROTOCOL_VERSION);
    h.setRole(role);
    h.setName(cfg_.name);
    h.setClientNonce(kj::arrayPtr(reinterpret_cast<const kj::byte*>(c.client_nonce.data()), c.client_nonce.size()));
    write(c, encode_frame(msg));
    return c.peer.id;
  }

  ConnId connect_as_server(const std::string& host, std::uint16_t port, const std::string& preamble) override {
    auto r = self_->add_tcp_scribe(host, port);
    if (!r)
      throw core::Error("iogrid: cannot connect to " + host + ":" + std::to_string(port) + ": " + self_->system().render(r.error()));
    self_->write(*r, preamble.size(), preamble.data());
    self_->flush(*r);
    auto& c = add(*r, host, false);  // the server's side: TLS accepts, the handshake waits for the peer's Hello
    c.peer.port = port;
    return c.peer.id;
  }

  void send(ConnId c, capnp::MessageBuilder& msg) override { send_frame(c, encode_frame(msg)); }

  void send_frame(ConnId id, const std::string& frame) override {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second.closing) return;
    write(it->second, frame);
  }

  void close(ConnId id, const std::string& why) override {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    auto hdl = it->second.hdl;
    Peer p = it->second.peer;
    conns_.erase(it);
    self_->close(hdl);
    svc_->on_closed(*this, p, why);
  }

  Peer* peer(ConnId id) override {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : &it->second.peer;
  }

  const std::string& name() const override { return cfg_.name; }
  caf::actor_system& system() override { return self_->system(); }
  caf::actor handle() override { return caf::actor_cast<caf::actor>(self_); }

  void stop() override {
    stopping_ = true;
    std::vector<ConnId> ids;
    for (auto& [id, c] : conns_) ids.push_back(id);
    for (auto id : ids) close(id, "endpoint stopped");
    svc_->on_stop(*this);
    self_->quit();
    // No handler runs after quit: let the service go, so that neither it nor this endpoint keeps the other alive
    // (stop() always runs from a posted call, never from inside the service).
    svc_.reset();
  }

  // ---- broker events ----
  void accepted(caf::io::connection_handle hdl) {
    auto addr = self_->remote_addr(hdl);
    add(hdl, addr).peer.port = self_->remote_port(hdl);
  }

  void data(caf::io::connection_handle hdl, const std::vector<char>& buf) {
    auto it = conns_.find(hdl.id());
    if (it == conns_.end()) return;
    auto id = hdl.id();
    try {
      if (it->second.ssl) {
        std::string plain, why;
        if (!decrypt(it->second, buf, plain, why)) return protocol_error(id, why);
        it->second.decoder.feed(plain.data(), plain.size());
      } else {
        it->second.decoder.feed(buf.data(), buf.size());
      }
      for (;;) {
        auto cit = conns_.find(id);  // a handler may have closed it
        if (cit == conns_.end() || cit->second.closing) return;
        auto frame = cit->second.decoder.next();
        if (!frame) return;
        auto env = frame->envelope();
        ++cit->second.peer.frames_in;
        if (!cit->second.peer.authenticated) handshake(cit->second, env);
        else svc_->on_message(*this, cit->second.peer, env);
      }
    } catch (const FrameError& e) {
      protocol_error(id, e.what());
    } catch (const kj::Exception& e) {
      protocol_error(id, std::string("malformed message: ") + e.getDescription().cStr());
    }
  }

  void closed(caf::io::connection_handle hdl) {
    auto it = conns_.find(hdl.id());
    if (it == conns_.end()) return;
    Peer p = it->second.peer;
    conns_.erase(it);
    svc_->on_closed(*this, p, "connection closed by the peer");
  }

  void tick() {
    svc_->on_tick(*this);
    core::trim_buffer_pool(core::kBufferPoolIdle);  // large buffers left from a burst go back to the system
  }
  Service& service() { return *svc_; }
  bool stopping() const { return stopping_; }

 private:
  Conn& add(caf::io::connection_handle hdl, const std::string& addr, bool outgoing = false) {
    auto& c = conns_[hdl.id()];
    c.hdl = hdl;
    c.peer.id = hdl.id();
    c.peer.address = addr;
    if (cfg_.tls) {
      c.ssl.reset(SSL_new(cfg_.tls.get()));
      SSL_set_bio(c.ssl.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
      if (outgoing) SSL_set_connect_state(c.ssl.get());
      else SSL_set_accept_state(c.ssl.get());
    }
    self_->configure_read(hdl, caf::io::receive_policy::at_most(256 * 1024));
    return c;
  }

  void write(Conn& c, const std::string& frame) {
    if (c.ssl) {
      c.plain_out += frame;
      return pump_tls(c);
    }
    self_->write(c.hdl, frame.size(), frame.data());
    self_->flush(c.hdl);
  }

  // TLS: moves pending plaintext into the session once it is up, and what OpenSSL wants sent onto the wire.
  void pump_tls(Conn& c) {
    auto* ssl = c.ssl.get();
    if (!SSL_is_init_finished(ssl)) SSL_do_handshake(ssl);
    if (SSL_is_init_finished(ssl) && !c.plain_out.empty()) {
      std::size_t off = 0;
      while (off < c.plain_out.size()) {
        int n = SSL_write(ssl, c.plain_out.data() + off, static_cast<int>(std::min<std::size_t>(c.plain_out.size() - off, 1 << 20)));
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      c.plain_out.erase(0, off);
    }
    auto* wbio = SSL_get_wbio(ssl);
    char buf[64 * 1024];
    bool wrote = false;
    while (BIO_ctrl_pending(wbio) > 0) {
      int n = BIO_read(wbio, buf, sizeof buf);
      if (n <= 0) break;
      self_->write(c.hdl, static_cast<std::size_t>(n), buf);
      wrote = true;
    }
    if (wrote) self_->flush(c.hdl);
  }

  // TLS: ciphertext in, plaintext out; false (with `why`) when the session failed.
  bool decrypt(Conn& c, const std::vector<char>& in, std::string& out, std::string& why) {
    auto* ssl = c.ssl.get();
    BIO_write(SSL_get_rbio(ssl), in.data(), static_cast<int>(in.size()));
    if (!SSL_is_init_finished(ssl)) {
      int r = SSL_do_handshake(ssl);
      if (r <= 0) {
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          auto v = SSL_get_verify_result(ssl);
          char err[256];
          ERR_error_string_n(ERR_get_error(), err, sizeof err);
          why = std::string("TLS handshake failed: ") + (v != X509_V_OK ? X509_verify_cert_error_string(v) : err);
          return false;
        }
      }
    }
    char buf[64 * 1024];
    for (;;) {
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      int e = SSL_get_error(ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      if (e == SSL_ERROR_ZERO_RETURN) break;
      char err[256];
      ERR_error_string_n(ERR_get_error(), err, sizeof err);
      why = std::string("TLS error: ") + err;
      return false;
    }
    pump_tls(c);
    return true;
  }

  void reject(Conn& c, const std::string& reason) {
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initReject().setReason(reason);
    write(c, encode_frame(msg));
    c.closing = true;
    auto id = c.peer.id;
    close(id, "refused: " + reason);
  }

  void protocol_error(ConnId id, const std::string& why) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    spdlog::warn("closing connection from {} ({} '{}'): {}", it->second.peer.address,
                 it->second.peer.authenticated ? role_name(it->second.peer.role) : "unauthenticated peer",
                 it->second.peer.name, why);
    close(id, "protocol error: " + why);
  }

  static std::string data_of(capnp::Data::Reader d) { return std::string(reinterpret_cast<const char*>(d.begin()), d.size()); }

  void authenticated(Conn& c) {
    c.peer.authenticated = true;
    c.decoder.set_limit(cfg_.frame_limit);
    svc_->on_peer(*this, c.peer);
  }

  void handshake(Conn& c, proto::Envelope::Reader env) {
    using W = proto::Envelope::Which;
    if (c.peer.outgoing) {
      switch (env.which()) {
        case W::CHALLENGE: {
          auto ch = env.getChallenge();
          if (ch.getProtocolVersion() != proto::PROTOCOL_VERSION)
            return protocol_error(c.peer.id, "protocol version mismatch: the server speaks " +
                                                 std::to_string(ch.getProtocolVersion()) + ", this process " +
                                                 std::to_string(proto::PROTOCOL_VERSION));
          c.server_nonce = data_of(ch.getServerNonce());
          // Answer even when the server's proof is wrong, so a head with another token refuses (and logs)
          // this peer; a server that proves nothing is dropped after its verdict.
          c.server_proven = equal_constant_time(data_of(ch.getServerProof()), server_proof(cfg_.token, c.client_nonce, c.server_nonce));
          capnp::MallocMessageBuilder msg;
          auto proof = client_proof(cfg_.token, c.server_nonce, c.client_nonce, static_cast<int>(c.peer.role), cfg_.name);
          msg.initRoot<proto::Envelope>().initAuth().setProof(
              kj::arrayPtr(reinterpret_cast<const kj::byte*>(proof.data()), proof.size()));
          write(c, encode_frame(msg));
          return;
        }
        case W::WELCOME: {
          if (!c.server_proven) {
            auto id = c.peer.id;
            spdlog::error("the server at {} does not know the cluster token; disconnecting", c.peer.address);
            return close(id, "refused: the server does not know the cluster token (wrong token file?)");
          }
          c.peer.name = env.getWelcome().getServerName();
          return authenticated(c);
        }
        case W::REJECT: {
          auto id = c.peer.id;
          return close(id, std::string("refused: ") + env.getReject().getReason().cStr());
        }
        default:
          return protocol_error(c.peer.id, "unexpected message before the handshake finished");
      }
    }
    switch (env.which()) {
      case W::HELLO: {
        if (c.hello_seen) return protocol_error(c.peer.id, "second hello");
        c.hello_seen = true;
        auto h = env.getHello();
        c.peer.role = h.getRole();
        c.peer.name = h.getName();
        if (h.getProtocolVersion() != proto::PROTOCOL_VERSION) {
          auto why = "protocol version mismatch: this " + cfg_.name + " speaks protocol " +
                     std::to_string(proto::PROTOCOL_VERSION) + ", the " + role_name(c.peer.role) + " '" + c.peer.name +
                     "' speaks " + std::to_string(h.getProtocolVersion()) + "; run the same iogrid version everywhere";
          spdlog::warn("refused {} '{}' from {}: {}", role_name(c.peer.role), c.peer.name, c.peer.address, why);
          return reject(c, why);
        }
        c.client_nonce = data_of(h.getClientNonce());
        if (c.client_nonce.size() < 16) return protocol_error(c.peer.id, "client nonce too short");
        c.server_nonce = random_bytes(32);
        auto proof = server_proof(cfg_.token, c.client_nonce, c.server_nonce);
        capnp::MallocMessageBuilder msg;
        auto ch = msg.initRoot<proto::Envelope>().initChallenge();
        ch.setProtocolVersion(proto::PROTOCOL_VERSION);
        ch.setServerNonce(kj::arrayPtr(reinterpret_cast<const kj::byte*>(c.server_nonce.data()), c.server_nonce.size()));
        ch.setServerProof(kj::arrayPtr(reinterpret_cast<const kj::byte*>(proof.data()), proof.size()));
        write(c, encode_frame(msg));
        return;
      }
      case W::AUTH: {
        if (!c.hello_seen) return protocol_error(c.peer.id, "auth before hello");
        auto expect = client_proof(cfg_.token, c.server_nonce, c.client_nonce, static_cast<int>(c.peer.role), c.peer.name);
        if (!equal_constant_time(data_of(env.getAuth().getProof()), expect)) {
          spdlog::warn("refused {} '{}' from {}: wrong cluster token", role_name(c.peer.role), c.peer.name, c.peer.address);
          return reject(c, "wrong cluster token: use the head's token file (--token-file, IOGRID_TOKEN_FILE)");
        }
        capnp::MallocMessageBuilder msg;
        msg.initRoot<proto::Envelope>().initWelcome().setServerName(cfg_.name);
        write(c, encode_frame(msg));
        return authenticated(c);
      }
      default:
        return protocol_error(c.peer.id, "unexpected message before the handshake");
    }
  }

  caf::io::broker* self_;
  std::shared_ptr<Service> svc_;
  EndpointConfig cfg_;
  std::unordered_map<ConnId, Conn> conns_;
  bool stopping_ = false;
};

struct EndpointState {
  std::unique_ptr<EndpointImpl> impl;
  static inline const char* name = "iogrid.endpoint";
};

caf::behavior endpoint_broker(caf::io::stateful_broker<EndpointState>* self, std::shared_ptr<Service> svc,
                              EndpointConfig cfg) {
  auto tick = cfg.tick;
  self->state.impl = std::make_unique<EndpointImpl>(self, std::move(svc), std::move(cfg));
  self->set_down_handler([](const caf::down_msg&) {});
  self->state.impl->service().on_start(*self->state.impl);
  self->delayed_send(self, tick, tick_atom::value);
  return {
      [=](const caf::io::new_connection_msg& m) { self->state.impl->accepted(m.handle); },
      [=](const caf::io::new_data_msg& m) { self->state.impl->data(m.handle, m.buf); },
      [=](const caf::io::connection_closed_msg& m) { self->state.impl->closed(m.handle); },
      [=](const caf::io::acceptor_closed_msg&) {},
      [=](tick_atom) {
        if (self->state.impl->stopping()) return;
        self->state.impl->tick();
        self->delayed_send(self, tick, tick_atom::value);
      },
      [=](run_atom, const RunFn& fn) { (*fn)(*self->state.impl); },
      [=](frame_atom, ConnId c, const std::string& frame) { self->state.impl->send_frame(c, frame); },
  };
}

}  // namespace

caf::actor spawn_endpoint(caf::actor_system& sys, std::shared_ptr<Service> svc, EndpointConfig cfg) {
  return sys.middleman().spawn_broker(endpoint_broker, std::move(svc), std::move(cfg));
}

void post(const caf::actor& endpoint, std::function<void(Endpoint&)> fn) {
  caf::anon_send(endpoint, run_atom::value, std::make_shared<std::function<void(Endpoint&)>>(std::move(fn)));
}

void post_frame(const caf::actor& endpoint, ConnId c, std::string frame) {
  caf::anon_send(endpoint, frame_atom::value, c, std::move(frame));
}

std::pair<std::string, std::uint16_t> parse_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    throw core::Error("iogrid: address '" + address + "' is not HOST:PORT (for example 10.0.0.5:6380)");
  auto host = address.substr(0, colon);
  int port = 0;
  try {
    std::size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) port = -1;
  } catch (...) {
    port = -1;
  }
  if (port <= 0 || port > 65535) throw core::Error("iogrid: address '" + address + "' has no valid port (1-65535)");
  return {host, static_cast<std::uint16_t>(port)};
}

}  // namespace iogrid::runtime::transport
