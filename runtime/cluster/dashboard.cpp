#include "runtime/cluster/dashboard.hpp"

#include <array>
#include <chrono>
#include <deque>
#include <map>
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

const char* kPage = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>iogrid</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#eee}</style></head>
<body><h1>iogrid cluster</h1><p id="summary">loading...</p>
<h2>Nodes</h2><table id="nodes"></table><h2>Jobs</h2><table id="jobs"></table>
<p><a href="/api/status">/api/status</a> · <a href="/metrics">/metrics</a></p>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function row(cells,h){return '<tr>'+cells.map(c=>(h?'<th>':'<td>')+esc(c)+(h?'</th>':'</td>')).join('')+'</tr>';}
async function refresh(){
  const s=await (await fetch('/api/status')).json();
  document.getElementById('summary').textContent=s.nodes.length+' nodes alive, '+s.dead_nodes+' dead, '+s.pending_leases+' leases queued';
  let n=row(['node','host','CPU free/all','memory GiB','GPUs','leases','store MiB','labels'],true);
  for(const x of s.nodes){n+=row([x.name,x.host,x.cpus_available+'/'+x.cpus,x.memory_gib.toFixed(1),
    x.gpus.map(g=>g.model+' '+g.memory_gib.toFixed(0)+'G').join(', ')||'-',x.active_leases,
    ((x.object_store_used_bytes||0)/1048576).toFixed(1),Object.entries(x.labels).map(e=>e.join('=')).join(' ')]);}
  document.getElementById('nodes').innerHTML=n;
  let j=row(['job','state','leases granted','active','driver'],true);
  for(const x of s.jobs){j+=row([x.id,x.state,x.leases_granted,x.active_leases,x.driver]);}
  document.getElementById('jobs').innerHTML=j;
}
refresh();setInterval(refresh,2000);
</script></body></html>
)";

}  // namespace

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') out += ' ';
    else if (s[i] != '%') out += s[i];
    else {
      const bool room = i + 2 < s.size();
      const int hi = room ? hex_value(s[i + 1]) : -1, lo = room ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) throw std::invalid_argument("malformed percent escape in the query");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    }
  }
  return out;
}

// A query parameter as an integer, `fallback` when absent; 400 when it is not one.
struct BadRequest : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::int64_t int_param(const std::map<std::string, std::string>& q, const std::string& name, std::int64_t fallback,
                       std::int64_t lo = INT64_MIN, std::int64_t hi = INT64_MAX) {
  auto it = q.find(name);
  if (it == q.end() || it->second.empty()) return fallback;
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || used == 0 || v < lo || v > hi)
    throw BadRequest("parameter '" + name + "' must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

std::string param(const std::map<std::string, std::string>& q, const std::string& name) {
  auto it = q.find(name);
  return it == q.end() ? std::string() : it->second;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string history_json(head::History& h, const std::string& path, const std::map<std::string, std::string>& q) {
  nlohmann::json out;
  if (path == "/api/v1/series") {
    out["series"] = h.series(param(q, "prefix"));
  } else if (path == "/api/v1/history") {
    const auto name = param(q, "series");
    if (name.empty()) throw BadRequest("parameter 'series' is required (see /api/v1/series)");
    const auto now = unix_ms_now();
    constexpr std::int64_t kLatestMs = std::int64_t(1) << 53;  // far past any clock; keeps `to - 1 h` in range
    const auto to = int_param(q, "to", now, 0, kLatestMs);
    const auto from = int_param(q, "from", to - 3'600'000, -kLatestMs, kLatestMs);
    const auto points = static_cast<std::size_t>(int_param(q, "points", 1000, 1, 100'000));
    head::History::Resolution used{};
    auto pts = h.points(name, from, to, points, &used);
    out["series"] = name;
    out["resolution"] = used == head::History::raw ? "raw" : used == head::History::minute ? "minute" : "hour";
    out["columns"] = {"ts_ms", "mean", "min", "max", "count"};
    auto& rows = out["points"] = nlohmann::json::array();
    for (const auto& p : pts) rows.push_back({p.ts_ms, p.mean, p.min, p.max, p.count});
  } else {
    head::EventQuery e;
    e.kind = param(q, "kind");
    e.subject_prefix = param(q, "subject");
    e.text = param(q, "q");
    e.from_ms = int_param(q, "from", 0);
    e.to_ms = int_param(q, "to", INT64_MAX);
    e.before_id = int_param(q, "before", 0, 0);
    e.limit = static_cast<std::size_t>(int_param(q, "limit", 100, 1, 10'000));
    auto& rows = out["events"] = nlohmann::json::array();
    auto events = h.events(e);
    for (const auto& ev : events)
      rows.push_back({{"id", ev.id}, {"ts_ms", ev.ts_ms}, {"kind", ev.kind}, {"subject", ev.subject}, {"detail", ev.detail}});
    out["next_before"] = events.size() == e.limit ? nlohmann::json(events.back().id) : nlohmann::json(nullptr);
  }
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string split_target(const std::string& target, std::map<std::string, std::string>& query) {
  const auto qm = target.find('?');
  const auto path = target.substr(0, qm);
  if (qm == std::string::npos) return path;
  std::stringstream in(target.substr(qm + 1));
  std::string part;
  while (std::getline(in, part, '&')) {
    if (part.empty()) continue;
    const auto eq = part.find('=');
    query[percent_decode(part.substr(0, eq))] = eq == std::string::npos ? std::string() : percent_decode(part.substr(eq + 1));
  }
  return path;
}

http::response<http::string_body> dashboard_respond(const http::request<http::string_body>& req,
                                                     const std::function<std::string()>& snapshot, head::History* history) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(false);
  try {
    std::map<std::string, std::string> query;
    std::string target;
    try {
      target = split_target(std::string(req.target()), query);
    } catch (const std::invalid_argument& e) {
      throw BadRequest(e.what());
    }
    if (req.method() != http::verb::get) {
      res.result(http::status::method_not_allowed);
      res.body() = "only GET\n";
    } else if (target == "/" || target == "/index.html") {
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.body() = kPage;
    } else if (target == "/api/status" || target == "/api/v1/status") {
      res.set(http::field::content_type, "application/json");
      res.body() = snapshot();
      // An ETag of the document: a client that already has it gets 304 and no body.
      const auto tag = "\"" + std::to_string(std::hash<std::string>{}(res.body())) + "\"";
      res.set(http::field::etag, tag);
      res.set(http::field::cache_control, "no-cache");
      if (req[http::field::if_none_match] == tag) {
        res.result(http::status::not_modified);
        res.body().clear();
      }
    } else if (target == "/metrics") {
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = prometheus_metrics(nlohmann::json::parse(snapshot()));
    } else if (history && (target == "/api/v1/series" || target == "/api/v1/history" || target == "/api/v1/events")) {
      res.set(http::field::content_type, "application/json");
      res.body() = history_json(*history, target, query);
    } else {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "not found (try /, /api/status, /metrics, /api/v1/series, /api/v1/history, /api/v1/events)\n";
    }
  } catch (const BadRequest& e) {
    res.result(http::status::bad_request);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::string("bad request: ") + e.what() + "\n";
  } catch (const std::exception& e) {
    res.result(http::status::internal_server_error);
    res.body() = std::string("error: ") + e.what() + "\n";
  }
  res.prepare_payload();
  return res;
}

namespace {

// One connection: read a request (within kReadTimeout), answer it, close; or, for /api/v1/stream, keep it
// open as a server-sent-events stream. Sessions run concurrently on the dashboard's thread, so a client that
// connects and sends nothing holds nobody else up; at most kMaxSessions are open (others are closed at once),
// and a stream whose client reads too slowly (kMaxQueued messages behind) is dropped.
constexpr auto kReadTimeout = std::chrono::seconds(10);
constexpr std::size_t kMaxSessions = 1024;
constexpr std::size_t kMaxQueued = 64;

struct Hub;

struct Session : std::enable_shared_from_this<Session> {
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buf;
  http::request_parser<http::string_body> parser;
  http::response<http::string_body> res;
  Hub& hub;
  std::deque<std::string> queue;  // stream messages not yet written
  bool writing = false, closed = false;

  Session(tcp::socket s, Hub& h);
  ~Session();
  void start();
  void start_stream();
  void send(std::string message);
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
  std::function<std::string()> snapshot;
  std::shared_ptr<head::History> history;
  std::size_t sessions = 0;
  std::vector<std::weak_ptr<Session>> streams;
  std::size_t last_status_hash = 0;

  void broadcast(const std::string& message) {
    std::vector<std::weak_ptr<Session>> live;
    for (auto& w : streams)
      if (auto s = w.lock(); s && !s->closed) {
        s->send(message);
        live.push_back(w);
      }
    streams = std::move(live);
  }
};

Session::Session(tcp::socket s, Hub& h) : stream(std::move(s)), hub(h) {
  ++hub.sessions;
  parser.header_limit(kHttpHeaderLimit);
  parser.body_limit(kHttpBodyLimit);
}

Session::~Session() { --hub.sessions; }

void Session::start() {
  stream.expires_after(kReadTimeout);
  http::async_read(stream, buf, parser, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
    if (ec) return self->close();
    const auto& req = self->parser.get();
    std::map<std::string, std::string> query;
    std::string path;
    try {
      path = split_target(std::string(req.target()), query);
    } catch (const std::exception&) {
      // dashboard_respond answers it (400)
    }
    if (req.method() == http::verb::get && path == "/api/v1/stream") return self->start_stream();
    self->res = dashboard_respond(req, self->hub.snapshot, self->hub.history.get());
    self->stream.expires_after(kReadTimeout);
    http::async_write(self->stream, self->res, [self](boost::system::error_code, std::size_t) { self->close(); });
  });
}

// Server-sent events: `status` (the status document, when it changed; the first at once) and `event` (each
// history event as it happens: nodes joining and dying, jobs starting and ending).
void Session::start_stream() {
  stream.expires_never();
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Connection: keep-alive\r\nX-Accel-Buffering: no\r\n\r\nretry: 2000\n\n";
  try {
    head += "event: status\ndata: " + hub.snapshot() + "\n\n";
  } catch (const std::exception&) {
    // the head is busy: the next tick sends it
  }
  send(std::move(head));
  hub.streams.push_back(weak_from_this());
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

void Session::send(std::string message) {
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
  asio::async_write(stream.socket(), asio::buffer(queue.front()), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
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
          std::make_shared<Session>(std::move(s), hub)->start();
        }
      }
      accept();
    });
  }
  // Each second, while streams are open: the status document to them when it changed (else, every 15 s, a
  // comment line).
  void tick() {
    ticker.expires_after(std::chrono::seconds(1));
    ticker.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      if (!hub.streams.empty()) {
        try {
          auto doc = hub.snapshot();
          const auto h = std::hash<std::string>{}(doc);
          if (h != hub.last_status_hash) {
            hub.last_status_hash = h;
            quiet_ticks = 0;
            hub.broadcast("event: status\ndata: " + doc + "\n\n");
          } else if (++quiet_ticks >= 15) {  // a comment now and then keeps proxies from closing a quiet stream
            quiet_ticks = 0;
            hub.broadcast(": keep-alive\n\n");
          }
        } catch (const std::exception&) {
        }
      }
      tick();
    });
  }
};

Dashboard::Dashboard(std::uint16_t port, const std::string& bind, std::function<std::string()> snapshot,
                     std::shared_ptr<head::History> history)
    : impl_(std::make_unique<Impl>()) {
  impl_->hub.snapshot = std::move(snapshot);
  impl_->hub.history = std::move(history);
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
  if (impl_->hub.history)  // history events reach the streams as they happen (posted from the head's thread)
    impl_->hub.history->on_event([impl = impl_.get()](const head::HistoryEvent& e) {
      asio::post(impl->io, [impl, msg = sse_event(e)] { impl->hub.broadcast(msg); });
    });
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

Dashboard::~Dashboard() {
  if (impl_->hub.history) impl_->hub.history->on_event(nullptr);
  asio::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ec;
    impl->acceptor.close(ec);
    impl->ticker.cancel();
  });
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t Dashboard::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace iogrid::runtime::cluster
