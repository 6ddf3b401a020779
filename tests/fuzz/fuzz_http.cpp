// HTTP requests to the head's dashboard: parsed by the server's own parser settings (Beast, header and body
// limits), answered by the server's handler against a status snapshot.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "fuzz.hpp"
#include "runtime/cluster/dashboard_http.hpp"

namespace {

namespace http = boost::beast::http;

std::vector<std::string> seeds() {
  return {"GET / HTTP/1.1\r\nHost: head\r\n\r\n",
          "GET /api/status HTTP/1.1\r\nHost: head\r\nAccept: application/json\r\n\r\n",
          "GET /metrics HTTP/1.0\r\n\r\n",
          "POST /api/status HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
          "GET /nowhere HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          "GET /api/v1/history?series=gpu%2Fa%2F0%2Fpower_w&from=0&to=99999999&points=3 HTTP/1.1\r\n\r\n",
          "GET /api/v1/events?kind=node&subject=a&q=dead&before=9&limit=2 HTTP/1.1\r\n\r\n",
          "GET /api/v1/series?prefix=gpu%2F HTTP/1.1\r\n\r\n",
          "POST /api/v1/login HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"key\":\"fuzz-token\"}",
          "GET /api/v1/nodes?offset=0&limit=5&q=a&model=H100 HTTP/1.1\r\nAuthorization: Bearer fuzz-token\r\n\r\n",
          "POST /api/v1/reservations HTTP/1.1\r\nAuthorization: Bearer fuzz-token\r\nContent-Length: 10\r\n\r\n{\"gpus\":2}",
          "DELETE /api/v1/reservations/c-1 HTTP/1.1\r\nCookie: iogrid_session=x\r\nX-IOGrid-CSRF: y\r\n\r\n",
          "GET /api/v1/logs?job=job-1&q=loss&offset=3&tail=2 HTTP/1.1\r\nAuthorization: Bearer fuzz-token\r\n\r\n",
          "GET /api/v1/explorer HTTP/1.1\r\n\r\n"};
}

// A status document with every field the handler reads (what the head's status builder always writes).
const std::function<std::string()> kSnapshot = [] {
  return std::string(R"({"dead_nodes":1,"pending_leases":3,)"
                     R"("nodes":[{"name":"a\"b","alive":true,"reputation":0.9,"cpus":4,"cpus_available":2,)"
                     R"("gpus":[{"model":"H100","memory_gib":80}],"labels":{"region":"eu"},"active_leases":1,)"
                     R"("object_store_used_bytes":1024,"object_store_capacity_bytes":4096,"object_store_objects":1,)"
                     R"("directory_objects":1,"directory_bytes":1024,)"
                     R"("telemetry":[{"index":0,"utilization_pct":50,"temperature_c":60,"power_w":300,"power_limit_w":700,)"
                     R"("memory_used_mib":1000,"memory_total_mib":80000,"sm_clock_mhz":1980}]}],)"
                     R"("jobs":[{"id":"job-1","state":"running","leases_granted":5,"active_leases":1,"driver":"d"}]})");
};

// A small history, for the /api/v1/ routes.
iogrid::runtime::head::History& history() {
  static auto* h = [] {
    auto* h = new iogrid::runtime::head::History(":memory:");
    for (int i = 0; i < 50; ++i) h->record("gpu/a/0/power_w", 1'000'000 + i * 10'000, 300 + i);
    h->event(1'000'000, "node", "a", "joined");
    h->event(1'200'000, "node", "a", "dead: no heartbeat");
    return h;
  }();
  return *h;
}

}  // namespace

IOGRID_FUZZ_TARGET(http, seeds) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(iogrid::runtime::cluster::kHttpHeaderLimit);
  parser.body_limit(iogrid::runtime::cluster::kHttpBodyLimit);
  parser.eager(true);
  boost::system::error_code ec;
  boost::asio::const_buffer buf(data, size);
  while (buf.size() > 0 && !parser.is_done()) {
    auto used = parser.put(buf, ec);
    if (ec == http::error::need_more) break;
    if (ec) return 0;  // the server answers nothing and closes
    buf += used;
    if (used == 0) break;
  }
  if (!parser.is_done()) {
    // The peer closed mid-message (http::read calls put_eof only once a message has begun).
    if (!parser.got_some()) return 0;
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
  }
  static auto* api = [] {
    iogrid::runtime::cluster::DashboardSource src;
    src.status = kSnapshot;
    src.history = std::shared_ptr<iogrid::runtime::head::History>(std::shared_ptr<iogrid::runtime::head::History>{}, &history());
    src.admin = [](const std::string& command, const std::string& args, const std::string&) -> std::string {
      if (command == "logs") return R"({"job":"job-1","text":"epoch 1 loss 0.5\nepoch 2 loss 0.4\npartial"})";
      if (command == "cluster.list") return R"([{"id":"c-1","gpus":2,"nodes":[{"node":"a\"b","gpus":2}]}])";
      if (args.size() % 2) throw std::runtime_error("iogrid: refused");
      return "{}";
    };
    return new iogrid::runtime::cluster::DashboardApi(src, {"fuzz-token", ""});
  }();
  auto res = api->respond(parser.get());
  std::string out;
  http::response_serializer<http::string_body> sr(res);
  sr.split(false);
  do {
    sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
      for (auto b : boost::beast::buffers_range_ref(buffers)) out.append(static_cast<const char*>(b.data()), b.size());
      sr.consume(boost::beast::buffer_bytes(buffers));
    });
  } while (!ec && !sr.is_done());
  return 0;
}
