#include "runtime/transport/data_plane.hpp"

#include <spdlog/spdlog.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <zlib.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "iogrid/core/errors.hpp"
#include "runtime/transport/auth.hpp"
#include "runtime/transport/data_wire.hpp"
#include "runtime/transport/punch.hpp"
#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/tcp.hpp"

namespace iogrid::runtime::transport {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

using data_wire::crc;
using data_wire::kChunk;
using data_wire::kDelete;
using data_wire::kGet;

std::string proof(const std::string& token, const std::string& nonce) { return hmac_sha256(token, "data|" + nonce); }

template <class T>
void put_le(std::vector<std::uint8_t>& out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<std::uint8_t>(std::uint64_t(v) >> (8 * i)));
}
template <class T>
T get_le(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return static_cast<T>(v);
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

constexpr std::chrono::milliseconds kRelayDialTimeout{5000};   // the head's relay: public, answers at once
constexpr std::chrono::milliseconds kNoRelayDialTimeout{20000};  // a direct dial with nothing to fall back to

// `fd` (connected, blocking) into `sock`; an error message, or "" (on error `fd` is closed).
std::string adopt(tcp::socket& sock, int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  boost::system::error_code ec;
  sock.assign(addr.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) ::close(fd);
  return ec ? ec.message() : "";
}

// Dials host:port within `timeout` (transport/tcp.hpp) into `sock`, left blocking (OpenSSL reads and writes it
// directly). Returns "" or why it failed.
std::string dial(tcp::socket& sock, const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
  std::string error;
  const int fd = dial_tcp(host, port, timeout, &error);
  if (fd < 0) return error;
  return adopt(sock, fd);
}

// OpenSSL writes to the socket with write(), which raises SIGPIPE when the peer has gone (asio and CAF use
// MSG_NOSIGNAL). A process that runs the data plane over TLS therefore ignores SIGPIPE: the write fails
// with EPIPE and that connection ends.
void ignore_sigpipe_for_tls(const std::shared_ptr<ssl_ctx_st>& tls) {
  if (tls) std::signal(SIGPIPE, SIG_IGN);
}

}  // namespace

namespace data_wire {

std::uint32_t crc(const std::uint8_t* p, std::size_t n) {
  return static_cast<std::uint32_t>(crc32(crc32(0L, Z_NULL, 0), p, static_cast<uInt>(n)));
}

Request parse_request(const std::uint8_t (&bytes)[9]) {
  if (bytes[0] != kGet && bytes[0] != kDelete) throw core::Error("unknown request " + std::to_string(int(bytes[0])));
  return Request{bytes[0], get_le<std::uint64_t>(bytes + 1)};
}

void encode_request(std::uint8_t (&bytes)[9], const Request& r) {
  bytes[0] = r.op;
  for (int i = 0; i < 8; ++i) bytes[1 + i] = static_cast<std::uint8_t>(r.key >> (8 * i));
}

core::BufferPtr read_reply(const Read2& read, std::uint64_t expected_size, const std::string& what) {
  std::uint8_t head[9];
  read(head, sizeof head, nullptr, 0);
  if (head[0] == 1) return nullptr;
  if (head[0] != 0) throw core::Error("iogrid: " + what + ": the data plane answered an unknown status " + std::to_string(int(head[0])));
  auto size = get_le<std::uint64_t>(head + 1);
  if (size > kMaxObjectBytes || (expected_size && size != expected_size))
    throw core::Error("iogrid: " + what + ": the data plane announced " + std::to_string(size) + " bytes" +
                      (expected_size ? ", not the object's " + std::to_string(expected_size) : " (more than any object may hold)"));
  auto out = core::make_buffer(size);
  auto* p = out->data();
  for (std::size_t off = 0; off < size; off += kChunk) {
    auto n = std::min<std::size_t>(kChunk, size - off);
    std::uint8_t c[4];
    read(p + off, n, c, 4);
    if (crc(p + off, n) != get_le<std::uint32_t>(c))
      throw core::Error("iogrid: " + what + " failed its checksum at byte " + std::to_string(off));
  }
  return out;
}

}  // namespace data_wire

// One data-plane connection: a blocking TCP socket, with TLS on top when the cluster uses it.
struct Channel {
  tcp::socket sock;
  std::unique_ptr<SSL, SslFree> ssl;
  explicit Channel(asio::io_context& io) : sock(io) {}

  // Runs the TLS handshake when `ctx` is set; throws iogrid::Error when it fails.
  void start_tls(ssl_ctx_st* ctx, bool server) {
    if (!ctx) return;
    ssl.reset(SSL_new(ctx));
    SSL_set_fd(ssl.get(), sock.native_handle());
    int r = server ? SSL_accept(ssl.get()) : SSL_connect(ssl.get());
    if (r != 1) {
      auto v = SSL_get_verify_result(ssl.get());
      throw core::Error(std::string("TLS handshake failed") + (v != X509_V_OK ? std::string(": ") + X509_verify_cert_error_string(v) : ""));
    }
  }
  void write_all(const void* p, std::size_t n) {
    if (!ssl) {
      asio::write(sock, asio::buffer(p, n));
      return;
    }
    const auto* b = static_cast<const char*>(p);
    while (n > 0) {
      int w = SSL_write(ssl.get(), b, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
      if (w <= 0) throw core::Error("TLS write failed");
      b += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void read_all(void* p, std::size_t n) {
    if (!ssl) {
      asio::read(sock, asio::buffer(p, n));
      return;
    }
    auto* b = static_cast<char*>(p);
    while (n > 0) {
      int r = SSL_read(ssl.get(), b, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
      if (r <= 0) throw core::Error("TLS read failed (connection closed)");
      b += r;
      n -= static_cast<std::size_t>(r);
    }
  }
};

// ---- server ----

struct DataServer::Impl {
  std::string token;
  std::shared_ptr<ssl_ctx_st> tls;
  Lookup lookup;
  Erase erase;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  std::mutex m;
  // One thread per open connection; a finished one is joined (and its socket closed) when the next
  // connection arrives, so a long-lived server holds only its live connections.
  struct Conn {
    std::shared_ptr<Channel> ch;
    std::shared_ptr<std::atomic<bool>> done;
    std::thread thread;
  };
  std::vector<Conn> conns;

  void reap() {  // under m
    for (auto it = conns.begin(); it != conns.end();) {
      if (!it->done->load()) {
        ++it;
        continue;
      }
      it->thread.join();
      boost::system::error_code ec;
      it->ch->sock.close(ec);
      it = conns.erase(it);
    }
  }
  std::atomic<bool> stopping{false};

  void serve(std::shared_ptr<Channel> ch) {
    try {
      ch->sock.set_option(tcp::no_delay(true));
      try {
        ch->start_tls(tls.get(), true);
      } catch (const std::exception& e) {
        spdlog::warn("data plane: refused a connection from {}: {}", ch->sock.remote_endpoint().address().to_string(), e.what());
        return;
      }
      auto nonce = random_bytes(32);
      ch->write_all(nonce.data(), nonce.size());
      std::string answer(32, '\0');
      ch->read_all(answer.data(), answer.size());
      if (!equal_constant_time(answer, proof(token, nonce))) {
        spdlog::warn("data plane: refused a connection from {}: wrong cluster token", ch->sock.remote_endpoint().address().to_string());
        return;
      }
      for (;;) {
        std::uint8_t bytes[9];
        ch->read_all(bytes, sizeof bytes);
        data_wire::Request req;
        try {
          req = data_wire::parse_request(bytes);
        } catch (const std::exception& e) {
          spdlog::warn("data plane: closing a connection: {}", e.what());
          return;
        }
        auto key = req.key;
        if (req.op == kDelete) {
          erase(key);
          std::uint8_t ok = 0;
          ch->write_all(&ok, 1);
          continue;
        }
        auto obj = lookup(key);
        std::vector<std::uint8_t> head;
        head.push_back(obj ? 0 : 1);
        put_le<std::uint64_t>(head, obj ? obj->size() : 0);
        ch->write_all(head.data(), head.size());
        if (!obj) continue;
        const auto* p = obj->data();
        for (std::size_t off = 0; off < obj->size(); off += kChunk) {
          auto n = std::min(kChunk, obj->size() - off);
          std::uint8_t c[4];
          auto sum = crc(p + off, n);
          for (int i = 0; i < 4; ++i) c[i] = static_cast<std::uint8_t>(sum >> (8 * i));
          if (ch->ssl) {
            ch->write_all(p + off, n);
            ch->write_all(c, 4);
          } else {
            std::array<asio::const_buffer, 2> bufs{asio::buffer(p + off, n), asio::buffer(c, 4)};
            asio::write(ch->sock, bufs);
          }
        }
      }
    } catch (const std::exception&) {
      // The peer went away (or sent garbage): this connection ends, the server goes on.
    }
  }
};

DataServer::DataServer(std::string token, std::string bind, Lookup lookup, Erase erase, std::shared_ptr<ssl_ctx_st> tls)
    : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  ignore_sigpipe_for_tls(tls);
  impl_->tls = std::move(tls);
  impl_->lookup = std::move(lookup);
  impl_->erase = std::move(erase);
  tcp::endpoint ep(asio::ip::make_address(bind), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->accept_thread = std::thread([impl = impl_.get()] {
    for (;;) {
      auto s = std::make_shared<Channel>(impl->io);
      boost::system::error_code ec;
      impl->acceptor.accept(s->sock, ec);
      if (impl->stopping) return;
      if (ec) continue;
      std::lock_guard<std::mutex> g(impl->m);
      impl->reap();
      auto done = std::make_shared<std::atomic<bool>>(false);
      impl->conns.push_back({s, done, std::thread([impl, s, done] {
                               impl->serve(s);
                               *done = true;
                             })});
    }
  });
}

DataServer::~DataServer() {
  impl_->stopping = true;
  boost::system::error_code ec;
  // shutdown() on the listening socket wakes the thread blocked in accept (close() alone would not).
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  impl_->acceptor.close(ec);
  std::lock_guard<std::mutex> g(impl_->m);
  // shutdown() wakes a connection thread blocked in read (close() alone would not).
  for (auto& c : impl_->conns) c.ch->sock.shutdown(tcp::socket::shutdown_both, ec);
  for (auto& c : impl_->conns) c.thread.join();
  for (auto& c : impl_->conns) c.ch->sock.close(ec);
}

void DataServer::serve_dialled(const std::string& host, std::uint16_t port, const std::string& session, bool punch) {
  auto s = std::make_shared<Channel>(impl_->io);
  std::lock_guard<std::mutex> g(impl_->m);
  if (impl_->stopping) return;
  impl_->reap();
  auto done = std::make_shared<std::atomic<bool>>(false);
  impl_->conns.push_back({s, done, std::thread([impl = impl_.get(), s, done, host, port, session, punch] {
                            auto link = relay_accept(host, port, session, impl->token, punch, kRelayDialTimeout);
                            auto error = link.fd < 0 ? link.error : adopt(s->sock, link.fd);
                            if (link.punched && error.empty())
                              spdlog::info("data plane: a puller behind a NAT reached this process directly (hole punched)");
                            if (!error.empty())
                              spdlog::warn("data plane: cannot reach the relay at {}:{}: {}", host, port, error);
                            else
                              impl->serve(s);
                            *done = true;
                          })});
}

std::uint16_t DataServer::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

// ---- client ----

struct DataClient::Impl {
  std::string token;
  std::shared_ptr<ssl_ctx_st> tls;
  // Declared before the channels that use it, so it is destroyed after them.
  asio::io_context io;
  std::mutex m;
  // Idle authenticated connections per server (and relay name: two servers behind two NATs may share an address).
  std::map<std::string, std::vector<std::unique_ptr<Channel>>> idle;
  std::set<std::string> through_relay;  // servers a direct dial failed for: the relay at once next time
  std::set<std::string> no_punch;       // servers a hole punch failed for: a plain relayed connection next time
  std::string relay_host;               // the head's relay (port 0: none)
  std::uint16_t relay_port = 0;
  std::chrono::milliseconds direct_timeout{1500};
  std::atomic<bool> punching{true};
  std::atomic<std::uint64_t> bytes{0}, fetches{0}, nanos{0}, last_bytes{0}, last_nanos{0}, relayed{0}, punched{0}, fallback_nanos{0};
  // Background frees.
  std::mutex fm;
  std::condition_variable fcv;
  std::deque<std::tuple<std::string, std::uint16_t, std::uint64_t, std::string>> frees;
  bool stop = false;
  std::thread freer;

  static std::string pool_key(const std::string& host, std::uint16_t port, const std::string& relay) {
    return host + ":" + std::to_string(port) + "|" + relay;
  }

  std::unique_ptr<Channel> connect(const std::string& host, std::uint16_t port, const std::string& relay) {
    const auto key = pool_key(host, port, relay);
    std::string via_host;
    std::uint16_t via_port = 0;
    auto timeout = kNoRelayDialTimeout;
    bool relay_now = false, punch = true;
    {
      std::lock_guard<std::mutex> g(m);
      auto& v = idle[key];
      if (!v.empty()) {
        auto s = std::move(v.back());
        v.pop_back();
        return s;
      }
      if (!relay.empty() && relay_port) {
        via_host = relay_host;
        via_port = relay_port;
        timeout = direct_timeout;
        relay_now = through_relay.count(key) > 0;
        punch = punching && no_punch.count(key) == 0;
      }
    }
    const auto where = host + ":" + std::to_string(port);
    auto s = std::make_unique<Channel>(io);
    boost::system::error_code ec;
    std::string direct_error;
    auto failed_at = std::chrono::steady_clock::now();
    if (!relay_now) {
      direct_error = dial(s->sock, host, port, timeout);
      if (!direct_error.empty() && !via_port) throw core::Error("iogrid: cannot reach the data plane at " + where + ": " + direct_error);
      if (!direct_error.empty()) {
        relay_now = true;
        failed_at = std::chrono::steady_clock::now();
        spdlog::info("data plane: {} cannot be dialled ({}): through the relay at {}:{} as '{}'", where, direct_error, via_host, via_port, relay);
      }
    }
    RelayLink link;
    if (relay_now) {
      // Through the relay, trying a hole punch first unless one failed for this server (transport/punch.hpp).
      link = relay_connect(via_host, via_port, relay, token, punch, kRelayDialTimeout);
      const auto error = link.fd < 0 ? link.error : adopt(s->sock, link.fd);
      if (!error.empty() && link.reached)
        throw core::Error("iogrid: the relay did not reach the data plane of '" + relay + "' (" + where + "): " + error);
      if (!error.empty())
        throw core::Error("iogrid: cannot reach the data plane at " + where +
                          (direct_error.empty() ? "" : " (" + direct_error + ")") + " nor the relay at " + via_host +
                          ":" + std::to_string(via_port) + ": " + error);
    }
    s->sock.set_option(tcp::no_delay(true), ec);
    try {
      s->start_tls(tls.get(), false);
      std::string nonce(32, '\0');
      s->read_all(nonce.data(), nonce.size());
      auto p = proof(token, nonce);
      s->write_all(p.data(), p.size());
    } catch (const std::exception& e) {
      if (relay_now && !link.punched)
        throw core::Error("iogrid: the relay did not reach the data plane of '" + relay + "' (" + where + "): " + e.what());
      throw core::Error("iogrid: the data plane at " + where + " refused this process: " + e.what());
    }
    if (relay_now) {
      std::lock_guard<std::mutex> g(m);
      const bool first = through_relay.insert(key).second;
      if (link.punched) {
        ++punched;
        if (first) spdlog::info("data plane: {} ('{}') reached directly by hole punching", where, relay);
        return s;
      }
      ++relayed;
      if (link.tried) {
        no_punch.insert(key);
        spdlog::info("data plane: a hole punch to {} ('{}') did not connect: relayed from now on", where, relay);
      }
      if (!direct_error.empty())
        fallback_nanos = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - failed_at).count());
    }
    return s;
  }
  void give_back(const std::string& host, std::uint16_t port, const std::string& relay, std::unique_ptr<Channel> s) {
    std::lock_guard<std::mutex> g(m);
    idle[pool_key(host, port, relay)].push_back(std::move(s));
  }
};

DataClient::DataClient(std::string token, std::shared_ptr<ssl_ctx_st> tls) : impl_(std::make_unique<Impl>()) {
  impl_->token = std::move(token);
  ignore_sigpipe_for_tls(tls);
  impl_->tls = std::move(tls);
  impl_->freer = std::thread([impl = impl_.get()] {
    for (;;) {
      std::tuple<std::string, std::uint16_t, std::uint64_t, std::string> job;
      {
        std::unique_lock<std::mutex> g(impl->fm);
        impl->fcv.wait(g, [impl] { return impl->stop || !impl->frees.empty(); });
        if (impl->frees.empty()) return;
        job = impl->frees.front();
        impl->frees.pop_front();
      }
      try {
        auto& [host, port, key, relay] = job;
        auto s = impl->connect(host, port, relay);
        std::uint8_t req[9];
        data_wire::encode_request(req, {kDelete, key});
        s->write_all(req, sizeof req);
        std::uint8_t status;
        s->read_all(&status, 1);
        impl->give_back(host, port, relay, std::move(s));
      } catch (const std::exception&) {
      }
    }
  });
}

DataClient::~DataClient() {
  {
    std::lock_guard<std::mutex> g(impl_->fm);
    impl_->stop = true;
  }
  impl_->fcv.notify_all();
  if (impl_->freer.joinable()) impl_->freer.join();
}

core::BufferPtr DataClient::fetch(const std::string& host, std::uint16_t port, std::uint64_t key, std::uint64_t expected_size,
                                  const std::string& relay) {
  auto t0 = std::chrono::steady_clock::now();
  auto s = impl_->connect(host, port, relay);
  std::uint8_t req[9];
  data_wire::encode_request(req, {kGet, key});
  const auto what = "object " + std::to_string(key) + " from " + host + ":" + std::to_string(port);
  core::BufferPtr out;
  try {
    s->write_all(req, sizeof req);
    out = data_wire::read_reply(
        [&](void* a, std::size_t na, void* b, std::size_t nb) {
          if (s->ssl || !b) {
            s->read_all(a, na);
            if (b) s->read_all(b, nb);
          } else {
            std::array<asio::mutable_buffer, 2> bufs{asio::buffer(a, na), asio::buffer(b, nb)};
            asio::read(s->sock, bufs);
          }
        },
        expected_size, what);
  } catch (const boost::system::system_error& e) {
    throw core::Error("iogrid: lost the data plane connection to " + host + ":" + std::to_string(port) + ": " + e.what());
  }
  if (!out) {
    impl_->give_back(host, port, relay, std::move(s));
    throw core::Error("iogrid: object " + std::to_string(key) + " is not at " + host + ":" + std::to_string(port));
  }
  impl_->give_back(host, port, relay, std::move(s));
  auto ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  impl_->bytes += out->size();
  impl_->fetches += 1;
  impl_->nanos += ns;
  impl_->last_bytes = out->size();
  impl_->last_nanos = ns;
  return out;
}

void DataClient::erase_later(const std::string& host, std::uint16_t port, std::uint64_t key, const std::string& relay) {
  {
    std::lock_guard<std::mutex> g(impl_->fm);
    impl_->frees.emplace_back(host, port, key, relay);
  }
  impl_->fcv.notify_one();
}

void DataClient::set_relay(const std::string& host, std::uint16_t port, std::chrono::milliseconds direct_timeout) {
  std::lock_guard<std::mutex> g(impl_->m);
  impl_->relay_host = host;
  impl_->relay_port = port;
  impl_->direct_timeout = direct_timeout;
}

void DataClient::set_punch(bool on) { impl_->punching = on; }

std::pair<std::string, std::uint16_t> DataClient::relay() const {
  std::lock_guard<std::mutex> g(impl_->m);
  return {impl_->relay_host, impl_->relay_port};
}

const std::string& DataClient::token() const { return impl_->token; }

TransferStats DataClient::stats() const {
  return TransferStats{impl_->bytes.load(),         double(impl_->nanos.load()) / 1e9, impl_->fetches.load(),
                       impl_->last_bytes.load(),    double(impl_->last_nanos.load()) / 1e9, impl_->relayed.load(),
                       double(impl_->fallback_nanos.load()) / 1e9, impl_->punched.load()};
}

namespace {
std::mutex g_client_mutex;
std::shared_ptr<DataClient> g_client;
}  // namespace

void set_process_data_client(std::shared_ptr<DataClient> c) {
  std::lock_guard<std::mutex> g(g_client_mutex);
  g_client = std::move(c);
}

std::shared_ptr<DataClient> process_data_client() {
  std::lock_guard<std::mutex> g(g_client_mutex);
  return g_client;
}

}  // namespace iogrid::runtime::transport
