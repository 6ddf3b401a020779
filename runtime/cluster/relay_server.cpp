#include "runtime/cluster/relay_server.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "iogrid/core/errors.hpp"
#include "runtime/transport/auth.hpp"
#include "runtime/transport/punch.hpp"
#include "runtime/transport/relay_hello.hpp"

namespace iogrid::runtime::cluster {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kLegBuffer = 64 * 1024;
constexpr std::size_t kMaxPendingHellos = 1024;  // connections that have not sent their first line yet

// One side of a relayed connection: its socket, and what it sent after its first line (before its peer came).
struct Leg {
  explicit Leg(tcp::socket s) : sock(std::move(s)) {}
  tcp::socket sock;
  asio::streambuf in{kLegBuffer};  // the first line, then early bytes: bounded (a line that never ends is refused)
  std::string early;
  bool typed = false;  // a signed PUNCH or MEET: its sender reads a line first, so a refusal says why (relay_hello.hpp)
};

// Where the relay sees a leg from (a v4-mapped IPv6 address as IPv4), or ("", 0) when the socket is gone.
std::pair<std::string, std::uint16_t> seen_from(tcp::socket& s) {
  boost::system::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec) return {"", 0};
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return {a.to_string(), ep.port()};
}

}  // namespace

// Handlers capture the Impl raw: it outlives its io_context's handlers (destroyed with it, after the thread ends).
struct RelayServer::Impl {
  explicit Impl(RelayOptions o) : opts(std::move(o)), acceptor(io) {}
  RelayOptions opts;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
  std::atomic<std::uint64_t> sessions{0}, active{0}, refused{0}, bytes{0}, punches{0};
  struct Waiting {
    std::shared_ptr<Leg> dialer;
    std::shared_ptr<asio::steady_timer> timer;
    std::string target;
    bool punch = false;
  };
  struct Session;
  std::mutex tunnels_m;
  std::vector<std::weak_ptr<Session>> tunnels;  // open tunnel sessions, for stats() (any thread)
  std::map<std::string, Waiting> waiting;  // session -> the dialer waiting for its target (io thread only)
  std::size_t pending_hellos = 0;          // io thread only

  void accept() {
    acceptor.async_accept([self = this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) self->hello(std::make_shared<Leg>(std::move(s)));
      self->accept();
    });
  }

  // `code`: the typed refusal's (relay_hello.hpp), written first to a leg that reads one; "" closes only.
  void refuse(const std::shared_ptr<Leg>& leg, const std::string& why, const std::string& code = "") {
    const auto n = ++refused;
    boost::system::error_code ec;
    const auto who = leg->sock.remote_endpoint(ec);
    if (n <= 10 || n % 1000 == 0)  // a flood of refusals does not flood the log
      spdlog::warn("relay: refused a connection from {} ({} refused so far): {}", ec ? std::string("?") : who.address().to_string(), n, why);
    if (leg->typed && !code.empty()) {
      // A short line on a connection that has sent one and read nothing: the socket buffer takes it at once.
      const auto line = transport::relay_refusal(code, why);
      asio::write(leg->sock, asio::buffer(line), ec);
    }
    leg->sock.close(ec);
  }

  void hello(std::shared_ptr<Leg> leg) {
    if (pending_hellos >= kMaxPendingHellos) return refuse(leg, "too many connections waiting to say who they are");
    ++pending_hellos;
    auto timer = std::make_shared<asio::steady_timer>(io, opts.hello_timeout);
    timer->async_wait([leg](boost::system::error_code ec) {
      if (!ec) leg->sock.close(ec);  // no first line in time
    });
    asio::async_read_until(leg->sock, leg->in, '\n', [self = this, leg, timer](boost::system::error_code ec, std::size_t n) {
      timer->cancel();
      --self->pending_hellos;
      if (ec || n > transport::kRelayHelloMax) return self->refuse(leg, ec ? "no first line: " + ec.message() : "first line too long");
      std::string line(asio::buffers_begin(leg->in.data()), asio::buffers_begin(leg->in.data()) + static_cast<std::ptrdiff_t>(n - 1));
      leg->in.consume(n);
      leg->early.assign(asio::buffers_begin(leg->in.data()), asio::buffers_end(leg->in.data()));
      leg->in.consume(leg->in.size());
      auto h = transport::parse_relay_hello(line, self->opts.token);
      if (!h) return self->refuse(leg, "a first line that is malformed or not signed with the cluster token");
      leg->typed = h->verb == "PUNCH" || h->verb == "MEET";
      if (h->verb == "CONNECT" || h->verb == "PUNCH") return self->connect(leg, h->id, h->verb == "PUNCH");
      if (h->verb == "MEET") return self->meet(leg, h->id);
      if (h->id.rfind("meet:", 0) == 0) return self->refuse(leg, "an ACCEPT line for a meeting");
      self->accepted(leg, h->id);
    });
  }

  void connect(std::shared_ptr<Leg> dialer, const std::string& target, bool punch) {
    const auto session = transport::to_hex(transport::random_bytes(12));
    if (punch && target.rfind("tunnel:", 0) == 0)  // a tunnel's far end is the node's local port: nobody to punch with
      return refuse(dialer, "a tunnel ('" + target + "') is not hole-punched: CONNECT to it", "not-punchable");
    if (!opts.ask_target || !opts.ask_target(target, session, punch))
      return refuse(dialer, "no process '" + target + "' to relay to", "no-target");
    auto timer = std::make_shared<asio::steady_timer>(io, opts.hello_timeout);
    waiting[session] = {dialer, timer, target, punch};
    timer->async_wait([self = this, session, target](boost::system::error_code ec) {
      if (ec) return;
      auto it = self->waiting.find(session);
      if (it == self->waiting.end()) return;
      auto leg = it->second.dialer;
      self->waiting.erase(it);
      self->refuse(leg, "'" + target + "' did not dial the relay within the timeout", "no-answer");
    });
  }

  // Two peers that chose the same name: the first waits (hello_timeout), the second is spliced to it.
  void meet(std::shared_ptr<Leg> leg, const std::string& name) {
    const auto key = "meet:" + name;
    if (waiting.count(key)) return accepted(leg, key);
    auto timer = std::make_shared<asio::steady_timer>(io, opts.hello_timeout);
    waiting[key] = {leg, timer, key, true};
    timer->async_wait([self = this, key](boost::system::error_code ec) {
      if (ec) return;
      auto it = self->waiting.find(key);
      if (it == self->waiting.end()) return;
      auto first = it->second.dialer;
      self->waiting.erase(it);
      self->refuse(first, "nobody came to meet at '" + key.substr(5) + "' within the timeout", "nobody-came");
    });
  }

  void accepted(std::shared_ptr<Leg> target, const std::string& session) {
    auto it = waiting.find(session);
    if (it == waiting.end()) return refuse(target, "no session " + session + " waiting");
    auto dialer = it->second.dialer;
    const auto name = it->second.target;
    const bool punch = it->second.punch;
    it->second.timer->cancel();
    waiting.erase(it);
    ++sessions;
    ++active;
    auto s = std::make_shared<Session>(this, dialer, target);
    s->target = name;
    boost::system::error_code ec;
    const auto from = dialer->sock.remote_endpoint(ec);
    s->from = ec ? std::string("?") : from.address().to_string();
    if (punch) {
      // Each side learns where the other is seen from, when to start and how long to try (transport/punch.hpp);
      // the lines go first, as if each side had sent the other's line before the splice.
      ++punches;
      const auto [d_host, d_port] = seen_from(dialer->sock);
      const auto [t_host, t_port] = seen_from(target->sock);
      const auto d_rtt = transport::tcp_rtt(dialer->sock.native_handle());
      const auto t_rtt = transport::tcp_rtt(target->sock.native_handle());
      const auto to_dialer = transport::plan_punch(d_host, t_host, t_port, d_rtt, t_rtt, opts.punch_loopback);
      const auto to_target = transport::plan_punch(t_host, d_host, d_port, t_rtt, d_rtt, opts.punch_loopback);
      dialer->early = transport::punch_line(to_target) + dialer->early;
      target->early = transport::punch_line(to_dialer) + target->early;
      spdlog::debug("relay: session {}: {}:{} and {}:{} try a direct connection ({} ms)", session, d_host, d_port, t_host,
                    t_port, to_dialer.window.count());
    }
    if (name.rfind("tunnel:", 0) == 0) {
      spdlog::info("relay: tunnel to {} opened for {} (session {})", name.substr(7), s->from, session);
      std::lock_guard<std::mutex> g(tunnels_m);
      tunnels.erase(std::remove_if(tunnels.begin(), tunnels.end(), [](const auto& w) { return w.expired(); }), tunnels.end());
      tunnels.push_back(s);
    } else {
      spdlog::debug("relay: session {} spliced ({} now)", session, active.load());
    }
    s->start();
  }

  // Two legs spliced: bytes copied both ways; either side ending ends both.
  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl* i, std::shared_ptr<Leg> a, std::shared_ptr<Leg> b) : impl(i), legs{std::move(a), std::move(b)}, idle(impl->io) {}
    Impl* impl;
    std::array<std::shared_ptr<Leg>, 2> legs;
    std::array<std::array<char, 64 * 1024>, 2> buf;
    asio::steady_timer idle;
    std::atomic<std::uint64_t> carried{0};  // read by stats() for tunnels
    std::atomic<bool> closed{false};
    std::string target, from;               // set before start()
    std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();

    void start() {
      // What each side sent before the other came goes first.
      for (int from = 0; from < 2; ++from) {
        auto early = std::make_shared<std::string>(std::move(legs[from]->early));
        if (early->empty()) {
          pump(from);
          continue;
        }
        if (impl->opts.max_bytes && carried + early->size() > impl->opts.max_bytes) early->resize(impl->opts.max_bytes - carried);
        count(early->size());
        asio::async_write(legs[1 - from]->sock, asio::buffer(*early), [self = shared_from_this(), from, early](boost::system::error_code ec, std::size_t) {
          if (ec) return self->close();
          self->pump(from);
        });
      }
      arm();
    }
    void arm() {
      if (impl->opts.idle.count() == 0) return;
      idle.expires_after(impl->opts.idle);
      idle.async_wait([self = this](boost::system::error_code ec) {
        if (!ec) self->close();
      });
    }
    // Bytes are counted when read, before they are passed on: whoever receives them sees them in the figures.
    void count(std::size_t n) {
      carried += n;
      impl->bytes += n;
    }
    void pump(int from) {
      if (closed) return;
      // Never more than the session's limit: a read asks for at most what is left of it.
      std::size_t room = buf[from].size();
      if (impl->opts.max_bytes) room = std::min<std::uint64_t>(room, impl->opts.max_bytes - std::min(carried.load(), impl->opts.max_bytes));
      if (room == 0) {
        spdlog::info("relay: a session reached its limit of {} bytes", impl->opts.max_bytes);
        return close();
      }
      legs[from]->sock.async_read_some(asio::buffer(buf[from].data(), room), [self = shared_from_this(), from](boost::system::error_code ec, std::size_t n) {
        if (ec) return self->close();
        self->arm();
        self->count(n);
        asio::async_write(self->legs[1 - from]->sock, asio::buffer(self->buf[from].data(), n),
                          [self, from](boost::system::error_code ec2, std::size_t) {
                            if (ec2) return self->close();
                            self->pump(from);
                          });
      });
    }
    void close() {
      if (closed) return;
      closed = true;
      --impl->active;
      if (target.rfind("tunnel:", 0) == 0)
        spdlog::info("relay: tunnel to {} for {} closed after {:.1f} s, {} bytes", target.substr(7), from,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count(), carried.load());
      boost::system::error_code ec;
      idle.cancel();
      for (auto& l : legs) {
        l->sock.shutdown(tcp::socket::shutdown_both, ec);
        l->sock.close(ec);
      }
    }
  };
};

RelayServer::RelayServer(RelayOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(impl_->opts.bind, ec);
  if (ec) throw core::Error("iogrid: bad relay bind address '" + impl_->opts.bind + "'");
  tcp::endpoint ep(addr, impl_->opts.port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw core::Error("iogrid: the relay cannot listen on " + impl_->opts.bind + ":" + std::to_string(impl_->opts.port) + ": " + ec.message());
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

RelayServer::~RelayServer() {
  impl_->io.stop();
  impl_->thread.join();
  impl_->waiting.clear();
}

std::uint16_t RelayServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void RelayServer::drop(const std::string& session, const std::string& why) {
  asio::post(impl_->io, [impl = impl_.get(), session, why] {
    auto it = impl->waiting.find(session);
    if (it == impl->waiting.end() || session.rfind("meet:", 0) == 0) return;
    auto leg = it->second.dialer;
    it->second.timer->cancel();
    impl->waiting.erase(it);
    impl->refuse(leg, why, "no-target");
  });
}

RelayStats RelayServer::stats() const {
  RelayStats r{impl_->sessions.load(), impl_->active.load(), impl_->refused.load(), impl_->bytes.load(), impl_->punches.load(), {}};
  std::lock_guard<std::mutex> g(impl_->tunnels_m);
  const auto now = std::chrono::steady_clock::now();
  for (const auto& w : impl_->tunnels)
    if (auto s = w.lock(); s && !s->closed)
      r.tunnels.push_back({s->target.substr(7), s->from, std::chrono::duration<double>(now - s->since).count(), s->carried.load()});
  return r;
}

}  // namespace iogrid::runtime::cluster
