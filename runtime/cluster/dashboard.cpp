#include "runtime/cluster/dashboard.hpp"

#include <chrono>
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

http::response<http::string_body> dashboard_respond(const http::request<http::string_body>& req,
                                                     const std::function<std::string()>& snapshot) {
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(false);
  std::string target(req.target());
  try {
    if (req.method() != http::verb::get) {
      res.result(http::status::method_not_allowed);
      res.body() = "only GET\n";
    } else if (target == "/" || target == "/index.html") {
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.body() = kPage;
    } else if (target == "/api/status") {
      res.set(http::field::content_type, "application/json");
      res.body() = snapshot();
    } else if (target == "/metrics") {
      res.set(http::field::content_type, "text/plain; version=0.0.4");
      res.body() = prometheus_metrics(nlohmann::json::parse(snapshot()));
    } else {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "not found (try /, /api/status, /metrics)\n";
    }
  } catch (const std::exception& e) {
    res.result(http::status::internal_server_error);
    res.body() = std::string("error: ") + e.what() + "\n";
  }
  res.prepare_payload();
  return res;
}

namespace {

// One connection: read a request (within kReadTimeout), answer it, close. Sessions run concurrently on the
// dashboard's thread, so a client that connects and sends nothing holds nobody else up.
constexpr auto kReadTimeout = std::chrono::seconds(10);

struct Session : std::enable_shared_from_this<Session> {
  boost::beast::tcp_stream stream;
  boost::beast::flat_buffer buf;
  http::request_parser<http::string_body> parser;
  http::response<http::string_body> res;
  const std::function<std::string()>& snapshot;

  Session(tcp::socket s, const std::function<std::string()>& snap) : stream(std::move(s)), snapshot(snap) {
    parser.header_limit(kHttpHeaderLimit);
    parser.body_limit(kHttpBodyLimit);
  }
  void start() {
    stream.expires_after(kReadTimeout);
    http::async_read(stream, buf, parser, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->res = dashboard_respond(self->parser.get(), self->snapshot);
      self->stream.expires_after(kReadTimeout);
      http::async_write(self->stream, self->res, [self](boost::system::error_code, std::size_t) { self->close(); });
    });
  }
  void close() {
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream.close();
  }
};

}  // namespace

struct Dashboard::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::function<std::string()> snapshot;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) std::make_shared<Session>(std::move(s), snapshot)->start();
      accept();
    });
  }
};

Dashboard::Dashboard(std::uint16_t port, const std::string& bind, std::function<std::string()> snapshot)
    : impl_(std::make_unique<Impl>()) {
  impl_->snapshot = std::move(snapshot);
  boost::system::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(bind, ec), port);
  if (ec) throw core::Error("iogrid: --dashboard-bind '" + bind + "' is not an IP address");
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep, ec);
  if (ec) throw core::Error("iogrid: cannot serve the dashboard on " + bind + ":" + std::to_string(port) + ": " + ec.message());
  impl_->acceptor.listen();
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

Dashboard::~Dashboard() {
  asio::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ec;
    impl->acceptor.close(ec);
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
