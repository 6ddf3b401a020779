// The embedded cluster's dashboard: a program run with `dashboard_port` serves its head's status, events and
// series on 127.0.0.1 while it runs, the same API as a cluster's head.
#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <chrono>
#include <thread>

#include "cluster_fixture.hpp"

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

int free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

nlohmann::json get_json(int port, const std::string& target) {
  asio::io_context io;
  boost::beast::tcp_stream s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  REQUIRE(res.result() == http::status::ok);
  return nlohmann::json::parse(res.body());
}

std::string dashboard_where() { return iogrid::current_node(); }
IOGRID_REMOTE(dashboard_where);

}  // namespace

TEST_CASE("an embedded cluster started with a dashboard port serves the head's API while the program runs",
          "[sdk][dashboard]") {
  const int port = free_port();
  auto o = mixed_cluster();
  o.dashboard_port = port;
  Cluster c(o);
  CHECK(iogrid::get(iogrid::task(dashboard_where).options({.num_gpus = 1, .gpu_model = "A100"}).remote()) == "a100-eu");
  auto status = get_json(port, "/api/v1/status");
  REQUIRE(status["nodes"].size() == 3);
  CHECK(status["jobs"][0]["state"] == "running");
  auto joined = get_json(port, "/api/v1/events?kind=node")["events"];
  CHECK(joined.size() == 3);
  // Cluster totals are recorded on the head's housekeeping tick (every 100 ms).
  bool recorded = false;
  for (int i = 0; i < 50 && !recorded; ++i) {
    auto series = get_json(port, "/api/v1/series?prefix=cluster/")["series"];
    recorded = std::find(series.begin(), series.end(), "cluster/nodes_alive") != series.end();
    if (!recorded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(recorded);
}
