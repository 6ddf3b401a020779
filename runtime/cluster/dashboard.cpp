#include "runtime/cluster/dashboard.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "iogrid/core/errors.hpp"
#include "runtime/cluster/dashboard_http.hpp"
#include "runtime/cluster/status_json.hpp"

namespace iogrid::runtime::cluster {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

// One connection: read a request (within kReadTimeout), answer it, close; or, for /api/v1/stream, keep it
// open as a server-sent-events stream. Sessions run concurrently on the dashboard's thread, so a client that
// connects and sends nothing holds nobody else up; at most kMaxSessions are open (others are closed at once),
// and a stream whose client reads too slowly (kMaxQueued messages behind) is dropped.
constexpr auto kReadTimeout = std::chrono::seconds(10);
constexpr std::size_t kMaxSessions = 1024;
constexpr std::size_t kMaxQueued = 64;

struct Hub;

http::response<http::string_body> unauthorized(const http::request<http::string_body>& req) {
  http::response<http::string_body> res{http::status::unauthorized, req.version()};
  res.set(http::field::content_type, "application/json");
  res.body() = R"({"error":"log in first for the full stream (view=full); the public one has no view parameter"})";
  res.prepare_payload();
  return res;
}


struct Session : std::enable_shared_from_this<Session> {
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buf;
  std::optional<http::request_parser<http::string_body>> parser;  // one per request (keep-alive reads several)
  http::response<http::string_body> res;
  Hub& hub;
  std::deque<std::shared_ptr<const std::string>> queue;  // stream messages not yet written (shared by every tab)
  bool writing = false, closed = false;

  Session(tcp::socket s, Hub& h);
  ~Session();
  void start();
  void start_stream(bool full);
  void send(std::shared_ptr<const std::string> message);
  void send(std::string message) { send(std::make_shared<const std::string>(std::move(message))); }
  void write_next();
  void close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
  }
};

// What the sessions share: the sources, the open sessions' count and the streams.
struct Hub {
  std::unique_ptr<DashboardApi> api;
  std::atomic<std::size_t> sessions{0};
  asio::thread_pool* pool = nullptr;  // where requests are answered
  std::vector<std::weak_ptr<Session>> streams;  // full: status documents and events (a login)
  std::vector<std::weak_ptr<Session>> public_streams;  // explorer documents
  std::size_t last_status_hash = 0, last_explorer_hash = 0;

  static void broadcast(std::vector<std::weak_ptr<Session>>& to, std::string text) {
    if (to.empty()) return;
    auto message = std::make_shared<const std::string>(std::move(text));  // one copy, however many tabs
    std::vector<std::weak_ptr<Session>> live;
    for (auto& w : to)
      if (auto s = w.lock(); s && !s->closed) {
        s->send(message);
        live.push_back(w);
      }
    to = std::move(live);
  }
};

Session::Session(tcp::socket s, Hub& h) : stream(std::move(s)), hub(h) {
  ++hub.sessions;
}

Session::~Session() { --hub.sessions; }

void Session::start() {
  stream.expires_after(kReadTimeout);
  parser.emplace();
  parser->header_limit(kHttpHeaderLimit);
  parser->body_limit(kHttpBodyLimit);
  http::async_read(stream, buf, *parser, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
    if (ec) return self->close();
    const auto& req = self->parser->get();
    std::map<std::string, std::string> query;
    std::string path;
    try {
      path = split_target(std::string(req.target()), query);
    } catch (const std::exception&) {
      // DashboardApi::respond answers it (400)
    }
    if (req.method() == http::verb::get && path == "/api/v1/stream") {
      const bool full = query["view"] == "full";
      if (!full || !self->hub.api->user_of(req).empty()) return self->start_stream(full);
    }
    auto write = [](std::shared_ptr<Session> s) {
      s->stream.expires_after(kReadTimeout);
      auto& stream = s->stream;  // before `s` moves into the handler
      auto& res = s->res;
      // Keep-alive (HTTP/1.1's default): the next request on the same connection, within the read timeout.
      http::async_write(stream, res, [s = std::move(s)](boost::system::error_code ec, std::size_t) {
        if (ec || !s->res.keep_alive()) return s->close();
        s->start();
      });
    };
    if (path == "/api/v1/stream") {
      self->res = unauthorized(req);
      return write(self);
    }
    // Answered on the pool (a history query or a busy head takes a while); written back on this thread.
    asio::post(*self->hub.pool, [self, write]() mutable {
      auto res = self->hub.api->respond(self->parser->get());
      auto io = self->stream.get_executor();
      asio::post(io, [self = std::move(self), res = std::move(res), write]() mutable {
        self->res = std::move(res);
        write(std::move(self));
      });
    });
  });
}

// Server-sent events, the first of each at once, then when it changed: `explorer` (the explorer's document),
// and on a full stream (a login) also `status` (the status document without its nodes, their totals instead:
// small at any size; the page asks /api/v1/nodes for the nodes it shows) and `event` (each history event as
// it happens: nodes joining and dying, jobs starting and ending, verifications).
void Session::start_stream(bool full) {
  stream.expires_never();
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Connection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\nretry: 2000\n\n";
  try {
    const auto snap = hub.api->snapshot();
    if (full) head += "event: status\ndata: " + snap->summary + "\n\n";
    head += "event: explorer\ndata: " + snap->explorer + "\n\n";
  } catch (const std::exception&) {
    // the head is busy: the next tick sends it
  }
  send(std::move(head));
  (full ? hub.streams : hub.public_streams).push_back(weak_from_this());
  // Reading on tells us when the client goes away.
  auto sink = std::make_shared<std::array<char, 512>>();
  auto reader = std::make_shared<std::function<void()>>();
  *reader = [self = shared_from_this(), sink, reader] {
    self->stream.socket().async_read_some(asio::buffer(*sink), [self, sink, reader](boost::system::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        *reader = nullptr;  // breaks the cycle
        return;
      }
      (*reader)();
    });
  };
  (*reader)();
}

void Session::send(std::shared_ptr<const std::string> message) {
  if (closed) return;
  if (queue.size() >= kMaxQueued) return close();  // too slow: dropped rather than buffered without end
  queue.push_back(std::move(message));
  if (!writing) write_next();
}

void Session::write_next() {
  if (queue.empty() || closed) {
    writing = false;
    return;
  }
  writing = true;
  asio::async_write(stream.socket(), asio::buffer(*queue.front()), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
    if (ec) return self->close();
    self->queue.pop_front();
    self->write_next();
  });
}

std::string sse_event(const head::HistoryEvent& e) {
  nlohmann::json j{{"ts_ms", e.ts_ms}, {"kind", e.kind}, {"subject", e.subject}, {"detail", e.detail}};
  return "event: event\ndata: " + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

}  // namespace

struct Dashboard::Impl {
  Hub hub;  // first: the io_context's pending handlers hold sessions that count themselves in it
  asio::io_context io;
  asio::thread_pool pool{4};
  tcp::acceptor acceptor{io};
  asio::steady_timer ticker{io};
  int quiet_ticks = 0;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        if (hub.sessions >= kMaxSessions) {
          boost::system::error_code ignored;
          s.close(ignored);
        } else {
          boost::system::error_code ignored;
          s.set_option(tcp::no_delay(true), ignored);  // answers go out at once, not after a delayed ACK
          std::make_shared<Session>(std::move(s), hub)->start();
        }
      }
      accept();
    });
  }
  // Each second, while streams are open: the status summary to them when it changed (else, every 15 s, a
  // comment line). A large summary (many jobs) goes out at most once per second per megabyte, so 50 tabs
  // cannot make the head a byte pump; events (a node's death) still go out at once.
  std::chrono::steady_clock::time_point next_status{};
  void tick() {
    ticker.expires_after(std::chrono::seconds(1));
    ticker.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      if (!hub.streams.empty() || !hub.public_streams.empty()) {
        bool sent = false;
        try {
          const auto now = std::chrono::steady_clock::now();
          const auto snap = hub.api->snapshot();  // one document for every tab
          if (!hub.streams.empty() && now >= next_status) {
            const auto& doc = snap->summary;
            next_status = now + std::chrono::milliseconds(std::clamp<std::size_t>(doc.size() / 1000, 900, 10'000));
            const auto h = std::hash<std::string>{}(doc);
            if (h != hub.last_status_hash) {
              hub.last_status_hash = h;
              sent = true;
              Hub::broadcast(hub.streams, "event: status\ndata: " + doc + "\n\n");
            }
          }
          {
            const auto& e = snap->explorer;
            const auto comma = e.find(',');
            auto eh = std::hash<std::string>{}(comma == std::string::npos ? e : e.substr(comma));  // without generated_unix_ms
            if (eh != hub.last_explorer_hash) {
              hub.last_explorer_hash = eh;
              sent = true;
              const auto message = "event: explorer\ndata: " + e + "\n\n";
              Hub::broadcast(hub.public_streams, message);
              Hub::broadcast(hub.streams, message);
            }
          }
        } catch (const std::exception&) {
        }
        if (sent) quiet_ticks = 0;
        else if (++quiet_ticks >= 15) {  // a comment now and then keeps proxies from closing a quiet stream
          quiet_ticks = 0;
          Hub::broadcast(hub.streams, ": keep-alive\n\n");
          Hub::broadcast(hub.public_streams, ": keep-alive\n\n");
        }
      }
      tick();
    });
  }
};

Dashboard::Dashboard(std::uint16_t port, const std::string& bind, DashboardSource source, DashboardAccess access)
    : impl_(std::make_unique<Impl>()) {
  auto history = source.history;
  impl_->hub.api = std::make_unique<DashboardApi>(std::move(source), std::move(access));
  impl_->hub.pool = &impl_->pool;
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(bind, ec), port);
  if (ec) throw core::Error("iogrid: --dashboard-bind '" + bind + "' is not an IP address");
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep, ec);
  if (ec) throw core::Error("iogrid: cannot serve the dashboard on " + bind + ":" + std::to_string(port) + ": " + ec.message());
  impl_->acceptor.listen();
  impl_->accept();
  impl_->tick();
  if (history)  // history events reach the streams as they happen (posted from the head's thread)
    history->on_event([impl = impl_.get()](const head::HistoryEvent& e) {
      asio::post(impl->io, [impl, msg = sse_event(e)] { Hub::broadcast(impl->hub.streams, msg); });
    });
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

Dashboard::~Dashboard() {
  if (const auto& h = impl_->hub.api->source().history) h->on_event(nullptr);
  asio::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ec;
    impl->acceptor.close(ec);
    impl->ticker.cancel();
  });
  impl_->pool.join();  // requests being answered finish (a head that does not answer: 5 s at most)
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t Dashboard::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace iogrid::runtime::cluster
