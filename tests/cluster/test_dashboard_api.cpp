// The dashboard's answers, without sockets: status, metrics, the history routes under /api/v1/, the explorer,
// logins and cross-site protection, reservations, logs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../runtime/head/fake_head.hpp"
#include "runtime/cluster/dashboard_http.hpp"
#include "runtime/cluster/status_json.hpp"

namespace http = boost::beast::http;
using iogrid::runtime::cluster::DashboardAccess;
using iogrid::runtime::cluster::DashboardApi;
using iogrid::runtime::cluster::DashboardSource;
using iogrid::runtime::head::History;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;

const std::function<std::string()> kSnapshot = [] { return std::string(R"({"nodes":[],"jobs":[],"dead_nodes":0,"pending_leases":0})"); };

DashboardSource source_of(const std::function<std::string()>& snapshot, History* h) {
  DashboardSource s;
  s.status = snapshot;
  if (h) s.history = std::shared_ptr<History>(std::shared_ptr<History>{}, h);  // not owned
  return s;
}

http::response<http::string_body> get(const std::string& target, History* h) {
  DashboardApi api(source_of(kSnapshot, h), {});
  http::request<http::string_body> req{http::verb::get, target, 11};
  return api.respond(req);
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
  DashboardApi api(source_of(kSnapshot, nullptr), {});
  auto cached = api.respond(again);
  CHECK(cached.result() == http::status::not_modified);
  CHECK(cached.body().empty());
  again.set(http::field::if_none_match, "\"stale\"");
  CHECK(api.respond(again).result() == http::status::ok);
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
    // A histogram's samples are its name with _bucket (and an le label), _sum and _count.
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string sfx = suffix;
      if (!types.count(family) && name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0 &&
          types.count(name.substr(0, name.size() - sfx.size())) && types[name.substr(0, name.size() - sfx.size())] == "histogram")
        family = name.substr(0, name.size() - sfx.size());
    }
    REQUIRE(types.count(family) == 1);
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
                       R"("jobs":[{"id":"job-1","state":"running","leases_granted":5,"active_leases":2,"tasks":{)"
                       R"("task":{"submitted":9,"waiting":1,"running":2,"finished":5,"failed":1},)"
                       R"("actor_call":{"submitted":3,"waiting":0,"running":0,"finished":3,"failed":0},)"
                       R"("actors":{"pending":0,"alive":2,"restarting":1,"dead":4},)"
                       R"("duration":{"buckets":[0.01,0.1],"counts":[4,1,1],"sum_s":2.5}}},)"
                       R"({"id":"job-2","state":"finished","leases_granted":7,"active_leases":0}],)"
                       R"("relay":{"port":7000,"sessions":12,"active":2,"refused":1,"bytes":123456,)"
                       R"("tunnels":[{"target":"box:8888","from":"10.0.0.9","seconds":3,"bytes":10},)"
                       R"({"target":"box:8888","from":"10.0.0.9","seconds":1,"bytes":0}]}})");
  };
  http::request<http::string_body> req{http::verb::get, "/metrics", 11};
  DashboardApi api(source_of(snapshot, nullptr), {});
  auto res = api.respond(req);
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
  CHECK(m.at("iogrid_tasks{job=\"job-1\",kind=\"task\",state=\"running\"}") == 2);
  CHECK(m.at("iogrid_tasks{job=\"job-1\",kind=\"actor_call\",state=\"finished\"}") == 3);
  CHECK(m.at("iogrid_actors{job=\"job-1\",state=\"alive\"}") == 2);
  CHECK(m.at("iogrid_relay_sessions_total") == 12);
  CHECK(m.at("iogrid_relay_active") == 2);
  CHECK(m.at("iogrid_relay_bytes_total") == 123456);
  CHECK(m.at("iogrid_relay_tunnels_open{tunnel=\"box:8888\"}") == 2);
  CHECK(m.at("iogrid_actors{job=\"job-1\",state=\"dead\"}") == 4);
  // Cumulative buckets, +Inf equal to the count.
  CHECK(m.at("iogrid_task_duration_seconds_bucket{job=\"job-1\",le=\"0.01\"}") == 4);
  CHECK(m.at("iogrid_task_duration_seconds_bucket{job=\"job-1\",le=\"0.1\"}") == 5);
  CHECK(m.at("iogrid_task_duration_seconds_bucket{job=\"job-1\",le=\"+Inf\"}") == 6);
  CHECK(m.at("iogrid_task_duration_seconds_count{job=\"job-1\"}") == 6);
  CHECK(m.at("iogrid_task_duration_seconds_sum{job=\"job-1\"}") == 2.5);
}

namespace {

// A head with two nodes, one reservation, a job with output; it records the commands it was asked.
struct FakeHead {
  std::vector<std::string> asked;  // what requests asked (the request thread only)
  std::atomic<int> lists{0};
  nlohmann::json reservations = nlohmann::json::array(
      {{{"id", "c-1"}, {"gpus", 2}, {"gpu_model", "H100"}, {"region", "eu"}, {"price_per_hour", 4.0}, {"owner", "job-9"},
        {"nodes", {{{"node", "h1"}, {"gpus", 2}}}}}});
  DashboardSource source() {
    DashboardSource s;
    s.status = [] {
      return std::string(
          R"({"dead_nodes":1,"pending_leases":0,"jobs":[],"nodes":[)"
          R"({"name":"h1","host":"10.0.0.1","cpus":8,"cpus_available":4,"labels":{"region":"eu"},"price_per_gpu_hour":2,)"
          R"("verification":"passed: 3 GEMMs","gpus":[{"model":"H100","free":0,"verified":true},{"model":"H100","free":1,"verified":true}]},)"
          R"({"name":"r1","host":"10.0.0.2","cpus":16,"cpus_available":16,"labels":{"region":"us"},"price_per_gpu_hour":0.5,)"
          R"("verification":"","gpus":[{"model":"RTX4090","free":0.5,"verified":false}]}]})");
    };
    s.admin = [this](const std::string& command, const std::string& args, const std::string& who) -> std::string {
      // The dashboard's own snapshots list reservations from their thread: counted, not recorded.
      if (command == "cluster.list" && who == "dashboard") return ++lists, reservations.dump();
      asked.push_back(command + " " + args + " as " + who);
      if (command == "cluster.list") return reservations.dump();
      if (command == "cluster.create") {
        auto a = nlohmann::json::parse(args);
        if (a.value("gpus", 0) > 3) throw std::runtime_error("iogrid: no 4 GPUs of one region (closest: eu has 3)");
        return nlohmann::json{{"id", "c-2"}, {"gpus", a["gpus"]}}.dump();
      }
      if (command == "cluster.delete") return nlohmann::json{{"deleted", nlohmann::json::parse(args)["id"]}}.dump();
      if (command == "ledger") return R"([{"kind":"node","name":"h1","gpu_seconds":10,"cost":0.5}])";
      if (command == "logs") return nlohmann::json{{"job", "job-1"}, {"text", "epoch 1 loss 0.9\nepoch 2 loss 0.5\nsaving\nepoch 3 lo"}}.dump();
      throw std::runtime_error("unknown");
    };
    return s;
  }
};

http::request<http::string_body> request(http::verb v, const std::string& target, const std::string& body = "") {
  http::request<http::string_body> req{v, target, 11};
  req.set(http::field::host, "127.0.0.1:8265");
  req.body() = body;
  req.prepare_payload();
  return req;
}

nlohmann::json body_of(const http::response<http::string_body>& r) { return nlohmann::json::parse(r.body()); }

}  // namespace

TEST_CASE("the explorer is public and tells supply, prices, verification and reservation health without hosts", "[dashboard]") {
  FakeHead head;
  DashboardApi api(head.source(), DashboardAccess{"the-cluster-token", ""});
  auto res = api.respond(request(http::verb::get, "/api/v1/explorer"));
  REQUIRE(res.result() == http::status::ok);
  CHECK(res.body().find("10.0.0.1") == std::string::npos);
  CHECK(res.body().find("job-9") == std::string::npos);  // reservations' owners are not public
  auto e = body_of(res);
  CHECK(e["nodes"]["alive"] == 2);
  CHECK(e["nodes"]["dead"] == 1);
  CHECK(e["utilisation"]["gpus"] == 3.0);
  CHECK(e["utilisation"]["gpus_busy"] == 1.5);
  REQUIRE(e["supply"].size() == 2);
  CHECK(e["supply"][0]["model"] == "H100");
  CHECK(e["supply"][0]["region"] == "eu");
  CHECK(e["supply"][0]["gpus"] == 2);
  CHECK(e["supply"][0]["verified"] == 2);
  CHECK(e["supply"][0]["busy"] == 1.0);
  CHECK(e["supply"][1]["model"] == "RTX4090");
  CHECK(e["supply"][1]["verified"] == 0);
  CHECK(e["prices"][1]["median"] == 0.5);
  CHECK(e["verification"]["passed"] == 1);
  CHECK(e["verification"]["not checked"] == 1);
  REQUIRE(e["reservations"].size() == 1);
  CHECK(e["reservations"][0]["health"] == "healthy");
  CHECK(e["reservations"][0]["nodes_alive"] == 1);
  // Public too: cluster totals over time; not: per-node series, events, the status, the ledger.
  CHECK(api.respond(request(http::verb::get, "/api/v1/status")).result() == http::status::unauthorized);
  CHECK(api.respond(request(http::verb::get, "/api/v1/ledger")).result() == http::status::unauthorized);
  CHECK(api.respond(request(http::verb::get, "/api/v1/nodes")).result() == http::status::unauthorized);
  CHECK(api.respond(request(http::verb::get, "/api/v1/reservations")).result() == http::status::unauthorized);
  CHECK(api.respond(request(http::verb::post, "/api/v1/reservations", R"({"gpus":1})")).result() ==
        http::status::unauthorized);
  CHECK(head.asked.empty());  // nothing but the snapshots' own reservation list reached the head
  CHECK(head.lists > 0);
}

TEST_CASE("a login (token or user key) opens the console, and state changes need the CSRF token and this origin", "[dashboard]") {
  FakeHead head;
  const auto keys = std::filesystem::temp_directory_path() / ("iogrid-ui-keys-" + std::to_string(::getpid()));
  {
    std::ofstream out(keys);
    out << "# comment\nalice 0123456789abcdef0123\n";
  }
  DashboardApi api(head.source(), DashboardAccess{"the-cluster-token", keys.string()});
  auto bad = api.respond(request(http::verb::post, "/api/v1/login", R"({"key":"guess"})"));
  CHECK(bad.result() == http::status::unauthorized);
  CHECK(api.respond(request(http::verb::post, "/api/v1/login", "not json")).result() == http::status::bad_request);
  auto login = api.respond(request(http::verb::post, "/api/v1/login", R"({"key":"0123456789abcdef0123"})"));
  REQUIRE(login.result() == http::status::ok);
  CHECK(body_of(login)["user"] == "alice");
  const auto cookie_header = std::string(login[http::field::set_cookie]);
  CHECK_THAT(cookie_header, Catch::Contains("HttpOnly") && Catch::Contains("SameSite=Strict"));
  const auto cookie = cookie_header.substr(0, cookie_header.find(';'));
  const auto csrf = body_of(login)["csrf"].get<std::string>();
  auto with_cookie = [&](http::verb v, const std::string& target, const std::string& body = "") {
    auto r = request(v, target, body);
    r.set(http::field::cookie, "theme=dark; " + cookie);
    return r;
  };
  auto session = body_of(api.respond(with_cookie(http::verb::get, "/api/v1/session")));
  CHECK(session["user"] == "alice");
  CHECK(session["csrf"] == csrf);
  auto nodes = api.respond(with_cookie(http::verb::get, "/api/v1/nodes?region=us"));
  REQUIRE(nodes.result() == http::status::ok);
  CHECK(body_of(nodes)["total"] == 1);
  CHECK(body_of(nodes)["nodes"][0]["name"] == "r1");
  CHECK(body_of(api.respond(with_cookie(http::verb::get, "/api/v1/nodes?model=H100&limit=1")))["nodes"][0]["name"] == "h1");
  CHECK(body_of(api.respond(with_cookie(http::verb::get, "/api/v1/nodes?offset=1&limit=1")))["nodes"][0]["name"] == "r1");
  CHECK(api.respond(with_cookie(http::verb::get, "/api/v1/nodes?limit=0")).result() == http::status::bad_request);

  // A reservation from the page: without the CSRF header refused, from another origin refused, with both made.
  auto no_csrf = api.respond(with_cookie(http::verb::post, "/api/v1/reservations", R"({"gpus":2})"));
  CHECK(no_csrf.result() == http::status::forbidden);
  auto cross = with_cookie(http::verb::post, "/api/v1/reservations", R"({"gpus":2})");
  cross.set("X-IOGrid-CSRF", csrf);
  cross.set(http::field::origin, "http://evil.example");
  CHECK(api.respond(cross).result() == http::status::forbidden);
  auto make = with_cookie(http::verb::post, "/api/v1/reservations", R"({"gpus":2,"gpu_model":"H100"})");
  make.set("X-IOGrid-CSRF", csrf);
  make.set(http::field::origin, "http://127.0.0.1:8265");
  auto made = api.respond(make);
  REQUIRE(made.result() == http::status::created);
  CHECK(body_of(made)["id"] == "c-2");
  CHECK_THAT(head.asked.back(), Catch::Contains("cluster.create") && Catch::Contains("as ui:alice"));
  // The head's refusal reaches the page word for word, as the CLI shows it.
  auto too_big = with_cookie(http::verb::post, "/api/v1/reservations", R"({"gpus":4})");
  too_big.set("X-IOGrid-CSRF", csrf);
  auto refused = api.respond(too_big);
  CHECK(refused.result() == http::status::unprocessable_entity);
  CHECK(body_of(refused)["error"] == "iogrid: no 4 GPUs of one region (closest: eu has 3)");
  auto del = with_cookie(http::verb::delete_, "/api/v1/reservations/c-1");
  del.set("X-IOGrid-CSRF", csrf);
  CHECK(body_of(api.respond(del))["deleted"] == "c-1");
  // A script with the token needs no CSRF header (a browser cannot send Authorization cross-site).
  auto scripted = request(http::verb::post, "/api/v1/reservations", R"({"gpus":1})");
  scripted.set(http::field::authorization, "Bearer the-cluster-token");
  CHECK(api.respond(scripted).result() == http::status::created);
  CHECK_THAT(head.asked.back(), Catch::Contains("as ui:operator"));

  // Removing the key ends what it can open at the next login; logging out ends the session.
  CHECK(api.respond(with_cookie(http::verb::post, "/api/v1/logout")).result() == http::status::forbidden);  // CSRF
  auto out = with_cookie(http::verb::post, "/api/v1/logout");
  out.set("X-IOGrid-CSRF", csrf);
  CHECK(api.respond(out).result() == http::status::ok);
  CHECK(api.respond(with_cookie(http::verb::get, "/api/v1/status")).result() == http::status::unauthorized);
  std::filesystem::remove(keys);
}

TEST_CASE("an open dashboard (embedded) needs no login but still its CSRF token for changes", "[dashboard]") {
  FakeHead head;
  DashboardApi api(head.source(), {});
  CHECK(api.respond(request(http::verb::get, "/api/v1/status")).result() == http::status::ok);
  auto session = body_of(api.respond(request(http::verb::get, "/api/v1/session")));
  CHECK(session["login_required"] == false);
  const auto csrf = session["csrf"].get<std::string>();
  REQUIRE(csrf.size() == 32);
  CHECK(api.respond(request(http::verb::post, "/api/v1/reservations", R"({"gpus":1})")).result() == http::status::forbidden);
  auto ok = request(http::verb::post, "/api/v1/reservations", R"({"gpus":1})");
  ok.set("X-IOGrid-CSRF", csrf);
  CHECK(api.respond(ok).result() == http::status::created);
  auto not_object = request(http::verb::post, "/api/v1/reservations", "[1]");
  not_object.set("X-IOGrid-CSRF", csrf);
  CHECK(api.respond(not_object).result() == http::status::bad_request);
}

TEST_CASE("a job's logs are searched and followed by byte offset, whole lines only", "[dashboard]") {
  FakeHead head;
  DashboardApi api(head.source(), {});
  auto all = body_of(api.respond(request(http::verb::get, "/api/v1/logs?job=job-1")));
  CHECK(all["lines"] == nlohmann::json({"epoch 1 loss 0.9", "epoch 2 loss 0.5", "saving"}));
  const auto next = all["next_offset"].get<std::size_t>();
  CHECK(next == std::string("epoch 1 loss 0.9\nepoch 2 loss 0.5\nsaving\n").size());  // the half line waits
  CHECK(body_of(api.respond(request(http::verb::get, "/api/v1/logs?job=job-1&offset=" + std::to_string(next))))["lines"].empty());
  auto found = body_of(api.respond(request(http::verb::get, "/api/v1/logs?job=job-1&q=LOSS&tail=1")));
  CHECK(found["matched"] == 2);
  CHECK(found["lines"] == nlohmann::json({"epoch 2 loss 0.5"}));
  CHECK(api.respond(request(http::verb::get, "/api/v1/logs")).result() == http::status::bad_request);
}

TEST_CASE("the status document holds the scheduler's queue and fair share per user, and each GPU's measured TFLOPS",
          "[dashboard]") {
  iogrid::test::FakeHead h;
  auto n = iogrid::sched::test::make_node("box", 8, 4);
  n.gpus[0].tflops = 812.5;
  h.node(n);
  h.driver(1, "alice");
  h.driver(2, "bob");
  // alice holds three GPUs, bob one and waits for two more.
  for (std::uint64_t i = 1; i <= 3; ++i) h.core->request_lease(1, i, iogrid::test::FakeHead::gpus(1));
  h.core->request_lease(2, 1, iogrid::test::FakeHead::gpus(1));
  h.core->request_lease(2, 2, iogrid::test::FakeHead::gpus(1));
  h.core->request_lease(2, 3, iogrid::test::FakeHead::gpus(1));
  const auto doc = iogrid::runtime::cluster::status_document_json(iogrid::runtime::cluster::head_status_message(*h.core, "t"));
  REQUIRE(doc["users"].size() == 2);
  const auto& alice = doc["users"][0];
  const auto& bob = doc["users"][1];
  CHECK(alice["user"] == "alice");
  CHECK(alice["leases"] == 3);
  CHECK(alice["gpus"].get<double>() == Approx(3.0));
  CHECK(alice["waiting"] == 0);
  CHECK(alice["share"].get<double>() == Approx(0.75));  // three of the cluster's four GPUs
  CHECK(alice["fair_share"].get<double>() == Approx(0.5));
  CHECK(bob["leases"] == 1);
  CHECK(bob["waiting"] == 2);
  CHECK(bob["jobs"] == 1);
  CHECK(doc["nodes"][0]["gpus"][0]["tflops"].get<double>() == Approx(812.5));
}
