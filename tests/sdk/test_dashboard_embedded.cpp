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

int dashboard_square(int x) {
  if (x < 0) throw std::runtime_error("negative input " + std::to_string(x));
  return x * x;
}
IOGRID_REMOTE(dashboard_square);

int dashboard_plus_one(int x) { return x + 1; }
IOGRID_REMOTE(dashboard_plus_one);

struct DashboardTally {
  explicit DashboardTally(int start) : n(start) {}
  int add(int d) { return n += d; }
  int n;
};
IOGRID_REMOTE(&DashboardTally::add);

struct DashboardBroken {
  DashboardBroken() { throw std::runtime_error("no weights file"); }
  int value() { return 1; }
};
IOGRID_REMOTE(&DashboardBroken::value);

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

TEST_CASE("the dashboard shows a job's tasks: counts by state, spans for the timeline, failures with their root cause",
          "[sdk][dashboard]") {
  const int port = free_port();
  auto o = mixed_cluster();
  o.dashboard_port = port;
  Cluster c(o);
  std::vector<iogrid::ObjectRef<int>> refs;
  for (int i = 0; i < 20; ++i) refs.push_back(iogrid::task(dashboard_square).remote(i));
  for (auto& r : refs) iogrid::get(r);
  // A failure, and one passed on through a task that depended on it: the root cause names the first.
  auto bad = iogrid::task(dashboard_square).remote(-3);
  auto downstream = iogrid::task(dashboard_plus_one).remote(bad);
  CHECK_THROWS(iogrid::get(downstream));
  nlohmann::json tasks;
  for (int i = 0; i < 50; ++i) {
    tasks = get_json(port, "/api/v1/tasks?job=job-1");
    if (!tasks["tasks"].is_null() && tasks["tasks"]["task"]["failed"] == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(tasks.dump(1));
  REQUIRE(!tasks["tasks"].is_null());
  CHECK(tasks["tasks"]["task"]["submitted"] == 22);
  CHECK(tasks["tasks"]["task"]["finished"] == 20);
  CHECK(tasks["tasks"]["task"]["failed"] == 2);
  CHECK(tasks["tasks"]["task"]["waiting"] == 0);
  CHECK(tasks["tasks"]["task"]["running"] == 0);
  CHECK(tasks["spans"].size() >= 21);  // the 20, the one that threw (the passed-on failure never ran)
  const auto& span = tasks["spans"][0];
  CHECK_THAT(span[0].get<std::string>(), Catch::Contains("dashboard_square"));
  CHECK(span[3].get<std::int64_t>() >= span[2].get<std::int64_t>());
  REQUIRE(tasks["failures"].size() == 2);
  CHECK_THAT(tasks["failures"][0]["error"].get<std::string>(), Catch::Contains("negative input -3"));
  CHECK_THAT(tasks["failures"][1]["root_task"].get<std::string>(), Catch::Contains("dashboard_square"));
  // The status carries the counts per job; /metrics the same by state and a duration histogram.
  auto status = get_json(port, "/api/v1/status");
  CHECK(status["jobs"][0]["tasks"]["task"]["finished"] == 20);
}

TEST_CASE("the dashboard lists a job's actors with their state, restarts, node and why they died", "[sdk][dashboard]") {
  const int port = free_port();
  auto o = mixed_cluster();
  o.dashboard_port = port;
  Cluster c(o);
  auto kept = iogrid::actor<DashboardTally>(1).options({.num_gpus = 1, .gpu_model = "A100", .max_restarts = 2}).remote();
  REQUIRE(iogrid::get(kept.call(&DashboardTally::add).remote(1)) == 2);
  kept.kill(/*no_restart=*/false);
  REQUIRE(iogrid::get(kept.call(&DashboardTally::add).remote(1), std::chrono::milliseconds(5000)) == 2);
  auto killed = iogrid::actor<DashboardTally>(0).remote();
  REQUIRE(iogrid::get(killed.call(&DashboardTally::add).remote(3)) == 3);
  killed.kill();
  auto broken = iogrid::actor<DashboardBroken>().remote();
  CHECK_THROWS(iogrid::get(broken.call(&DashboardBroken::value).remote(), std::chrono::milliseconds(5000)));

  nlohmann::json a;
  for (int i = 0; i < 50; ++i) {
    a = get_json(port, "/api/v1/actors?job=job-1");
    if (a["states"]["dead"] == 2 && a["states"]["alive"] == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(a.dump(1));
  CHECK(a["total"] == 3);
  CHECK(a["states"]["alive"] == 1);
  CHECK(a["states"]["dead"] == 2);
  CHECK(a["states"]["pending"] == 0);
  REQUIRE(a["actors"].size() == 3);
  // Live ones first: the restarted one, on the A100 node, after one restart.
  const auto& alive = a["actors"][0];
  CHECK(alive["state"] == "alive");
  CHECK(alive["node"] == "a100-eu");
  CHECK(alive["restarts"] == 1);
  CHECK(alive["job"] == "job-1");
  CHECK_THAT(alive["name"].get<std::string>(), Catch::Contains("DashboardTally"));
  // Filtered by state and by text (the reason it died).
  auto dead = get_json(port, "/api/v1/actors?job=job-1&state=dead");
  REQUIRE(dead["total"] == 2);
  auto why = get_json(port, "/api/v1/actors?q=weights");
  REQUIRE(why["total"] == 1);
  CHECK_THAT(why["actors"][0]["error"].get<std::string>(), Catch::Contains("no weights file"));
  CHECK_THAT(why["actors"][0]["name"].get<std::string>(), Catch::Contains("DashboardBroken"));
  auto page = get_json(port, "/api/v1/actors?offset=1&limit=1");
  CHECK(page["total"] == 3);
  REQUIRE(page["actors"].size() == 1);
  CHECK(page["actors"][0]["state"] == "dead");
  // The status document's job carries the counts (and /metrics as iogrid_actors).
  auto status = get_json(port, "/api/v1/status");
  CHECK(status["jobs"][0]["tasks"]["actors"]["alive"] == 1);
}
