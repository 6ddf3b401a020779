// The dashboard's answers, without sockets: status, metrics, and the history routes under /api/v1/.
#include <catch2/catch.hpp>

#include <cctype>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/cluster/dashboard_http.hpp"

namespace http = boost::beast::http;
using iogrid::runtime::cluster::dashboard_respond;
using iogrid::runtime::head::History;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;

const std::function<std::string()> kSnapshot = [] { return std::string(R"({"nodes":[],"jobs":[],"dead_nodes":0,"pending_leases":0})"); };

http::response<http::string_body> get(const std::string& target, History* h) {
  http::request<http::string_body> req{http::verb::get, target, 11};
  return dashboard_respond(req, kSnapshot, h);
}

}  // namespace

TEST_CASE("the dashboard serves the head's history: series, points at a resolution, events paged", "[dashboard]") {
  History h(":memory:");
  for (int i = 0; i < 360; ++i) h.record("gpu/box 1/0/power_w", kT0 + i * 10'000, 100.0 + i);  // an hour
  h.record("cluster/nodes_alive", kT0, 3);
  for (int i = 0; i < 5; ++i) h.event(kT0 + i, "node", "box 1", i == 4 ? "dead: no heartbeat for 2501 ms" : "joined");

  auto series = get("/api/v1/series?prefix=gpu%2F", &h);
  REQUIRE(series.result() == http::status::ok);
  CHECK(nlohmann::json::parse(series.body())["series"] == nlohmann::json::array({"gpu/box 1/0/power_w"}));

  const auto range = "&from=" + std::to_string(kT0) + "&to=" + std::to_string(kT0 + 3'600'000);
  auto raw = nlohmann::json::parse(get("/api/v1/history?series=gpu%2Fbox+1%2F0%2Fpower_w" + range, &h).body());
  CHECK(raw["resolution"] == "raw");
  REQUIRE(raw["points"].size() == 360);
  CHECK(raw["points"][1][0] == kT0 + 10'000);
  CHECK(raw["points"][1][1] == 101.0);
  auto coarse = nlohmann::json::parse(get("/api/v1/history?series=gpu%2Fbox%201%2F0%2Fpower_w&points=60" + range, &h).body());
  CHECK(coarse["resolution"] == "minute");
  CHECK(coarse["points"].size() == 60);

  auto page = nlohmann::json::parse(get("/api/v1/events?kind=node&limit=3", &h).body());
  REQUIRE(page["events"].size() == 3);
  CHECK(page["events"][0]["detail"] == "dead: no heartbeat for 2501 ms");
  const auto next = page["next_before"].get<std::int64_t>();
  auto rest = nlohmann::json::parse(get("/api/v1/events?kind=node&limit=3&before=" + std::to_string(next), &h).body());
  CHECK(rest["events"].size() == 2);
  CHECK(rest["next_before"].is_null());
  auto found = nlohmann::json::parse(get("/api/v1/events?q=heartbeat", &h).body());
  CHECK(found["events"].size() == 1);

  // Bad parameters are refused with 400 naming them; without a history the routes are not there.
  auto no_series = get("/api/v1/history", &h);
  CHECK(no_series.result() == http::status::bad_request);
  CHECK_THAT(no_series.body(), Catch::Contains("'series'"));
  auto bad_limit = get("/api/v1/events?limit=many", &h);
  CHECK(bad_limit.result() == http::status::bad_request);
  CHECK_THAT(bad_limit.body(), Catch::Contains("'limit'"));
  CHECK(get("/api/v1/events?limit=0", &h).result() == http::status::bad_request);
  // A hostile range (the default start is an hour before `to`) is refused, not computed.
  CHECK(get("/api/v1/history?series=x&to=-9223372036854775808", &h).result() == http::status::bad_request);
  CHECK(get("/api/v1/series?prefix=%zz", &h).result() == http::status::bad_request);
  CHECK(get("/api/v1/series", nullptr).result() == http::status::not_found);
  // The versioned status is the same document as /api/status, with an ETag: sent back, it gets 304 and no body.
  auto status = get("/api/v1/status", nullptr);
  CHECK(status.body() == kSnapshot());
  const auto tag = std::string(status[http::field::etag]);
  REQUIRE(!tag.empty());
  http::request<http::string_body> again{http::verb::get, "/api/v1/status", 11};
  again.set(http::field::if_none_match, tag);
  auto cached = dashboard_respond(again, kSnapshot, nullptr);
  CHECK(cached.result() == http::status::not_modified);
  CHECK(cached.body().empty());
  again.set(http::field::if_none_match, "\"stale\"");
  CHECK(dashboard_respond(again, kSnapshot, nullptr).result() == http::status::ok);
}

namespace {

// A strict reader of Prometheus' text exposition format (0.0.4): every sample belongs to a family declared by
// HELP and TYPE lines before it, names and labels are well formed, values are numbers, no series repeats.
// Returns the samples as "name{labels}" -> value; fails the test on the first violation.
std::map<std::string, double> parse_prometheus(const std::string& text) {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::string helped;
  auto valid_name = [](const std::string& n) {
    if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_' || n[0] == ':')) return false;
    for (char c : n)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) return false;
    return true;
  };
  std::istringstream in(text);
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    INFO("line " << no << ": " << line);
    REQUIRE(!line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      helped = line.substr(7, line.find(' ', 7) - 7);
      REQUIRE(valid_name(helped));
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      REQUIRE(name == helped);
      REQUIRE((type == "gauge" || type == "counter" || type == "histogram" || type == "summary" || type == "untyped"));
      REQUIRE(types.count(name) == 0);  // a family is declared once
      types[name] = type;
      continue;
    }
    REQUIRE(line[0] != '#');
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const auto name = line.substr(0, i);
    REQUIRE(valid_name(name));
    REQUIRE(types.count(name) == 1);
    std::string series = name;
    if (i < line.size() && line[i] == '{') {
      series += '{';
      ++i;
      while (line.at(i) != '}') {
        std::size_t eq = line.find('=', i);
        REQUIRE(eq != std::string::npos);
        REQUIRE(valid_name(line.substr(i, eq - i)));
        REQUIRE(line.at(eq + 1) == '"');
        std::size_t j = eq + 2;
        while (line.at(j) != '"') {
          if (line[j] == '\\') {
            REQUIRE((line.at(j + 1) == '\\' || line.at(j + 1) == '"' || line.at(j + 1) == 'n'));
            ++j;
          }
          ++j;
        }
        series += line.substr(i, j + 1 - i);
        i = j + 1;
        if (line.at(i) == ',') {
          series += ',';
          ++i;
        }
      }
      series += '}';
      ++i;
    }
    REQUIRE(line.at(i) == ' ');
    std::size_t used = 0;
    const double v = std::stod(line.substr(i + 1), &used);
    REQUIRE(i + 1 + used == line.size());
    REQUIRE(samples.count(series) == 0);
    samples[series] = v;
  }
  return samples;
}

}  // namespace

TEST_CASE("/metrics is valid Prometheus text with node, GPU, store, job and lease families", "[dashboard]") {
  const std::function<std::string()> snapshot = [] {
    return std::string(R"({"dead_nodes":1,"pending_leases":3,"nodes":[)"
                       R"({"name":"box \"1\"","cpus":8,"cpus_available":6,"memory_gib":16,"reputation":0.75,)"
                       R"("price_per_gpu_hour":1.5,"last_heartbeat_ms":250,"active_leases":2,"verification":"verified",)"
                       R"("object_store_used_bytes":1024,"object_store_capacity_bytes":4096,"object_store_objects":3,)"
                       R"("spilled_bytes":0,"directory_bytes":2048,"gpus":[{"model":"H100"}],)"
                       R"("telemetry":[{"index":0,"utilization_pct":97,"temperature_c":71,"power_w":650,"power_limit_w":700,)"
                       R"("memory_used_gib":40,"sm_clock_mhz":1980}]}],)"
                       R"("jobs":[{"id":"job-1","state":"running","leases_granted":5,"active_leases":2},)"
                       R"({"id":"job-2","state":"finished","leases_granted":7,"active_leases":0}]})");
  };
  http::request<http::string_body> req{http::verb::get, "/metrics", 11};
  auto res = dashboard_respond(req, snapshot, nullptr);
  REQUIRE(res.result() == http::status::ok);
  const auto m = parse_prometheus(res.body());
  CHECK(m.at("iogrid_nodes{state=\"dead\"}") == 1);
  CHECK(m.at("iogrid_node_cpus{node=\"box \\\"1\\\"\",kind=\"available\"}") == 6);
  CHECK(m.at("iogrid_node_memory_bytes{node=\"box \\\"1\\\"\"}") == 16.0 * 1073741824.0);
  CHECK(m.at("iogrid_node_reputation{node=\"box \\\"1\\\"\"}") == 0.75);
  CHECK(m.at("iogrid_node_heartbeat_age_seconds{node=\"box \\\"1\\\"\"}") == 0.25);
  CHECK(m.at("iogrid_node_verified{node=\"box \\\"1\\\"\",state=\"verified\"}") == 1);
  CHECK(m.at("iogrid_gpu_power_limit_watts{node=\"box \\\"1\\\"\",gpu=\"0\"}") == 700);
  CHECK(m.at("iogrid_gpu_sm_clock_hertz{node=\"box \\\"1\\\"\",gpu=\"0\"}") == 1.98e9);
  CHECK(m.at("iogrid_jobs{state=\"finished\"}") == 1);
  CHECK(m.at("iogrid_job_active_leases{job=\"job-1\"}") == 2);
  CHECK(m.count("iogrid_job_active_leases{job=\"job-2\"}") == 0);
  CHECK(m.at("iogrid_leases_granted_total") == 12);
  CHECK(m.at("iogrid_pending_leases") == 3);
}
