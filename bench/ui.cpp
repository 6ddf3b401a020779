// `iogrid bench ui`: the web UI and its API in front of a large head: --nodes N (default 10,000) declared-GPU
// nodes heartbeating with telemetry every second and --tasks T (default 100,000) task spans reported by
// drivers, held by a real head core (runtime/head/) behind the real dashboard (runtime/cluster/dashboard.*),
// all in this process; the nodes and drivers are simulated at the head's interface (joins, heartbeats,
// task reports), not as processes.
//   ui_first_paint_{explorer,worker,console}_ms   headless chromium (Debian's, through ui/test/bench.mjs):
//       navigation start to the view's table showing data, median of --runs fresh pages
//   ui_event_latency_ms     a node dies in the head (the head knows at t0); the console page open on it shows
//       it dead at t1 (MutationObserver, wall clock): median of 5 deaths
//   head_cpu_idle_pct / head_cpu_50_tabs_pct   this process's CPU (head core, simulated heartbeats, dashboard)
//       over 10 s without a browser, and with 50 explorer tabs open (each with its own event stream;
//       IOGRID_BENCH_UI_TABS=console holds the console instead: the whole status document to every tab)
//   api_p50_ms / api_p99_ms   a mix of paged API calls (explorer, nodes, events, history, tasks) at 200
//       requests/s for 10 s, open loop (latency counted from each request's planned start)
//   api_status_ms / status_document_mb   the full status document of the head (every node, every GPU)
// The browser rows need node, ui/node_modules (scripts/setup) and chromium; without them they are left out,
// and the bench says why.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "bench/report.hpp"
#include "runtime/cluster/dashboard.hpp"
#include "runtime/cluster/status_json.hpp"
#include "runtime/head/head_core.hpp"

#ifndef IOGRID_SOURCE_DIR
#define IOGRID_SOURCE_DIR ""
#endif

namespace iogrid::bench {

namespace {

using Clock = std::chrono::steady_clock;
namespace head = runtime::head;
namespace http = boost::beast::http;

constexpr const char* kKey = "bench-ui-key-0123456789abcdef";


// A head core with N heartbeating GPU nodes and T reported task spans; its own thread beats and ticks it.
struct BigHead {
  std::mutex m;
  head::IgnoreHeadEvents events;
  std::unique_ptr<head::HeadCore> core;
  std::vector<std::string> names;
  std::vector<int> gpus_of;
  std::atomic<bool> stop{false};
  std::thread beat;

  BigHead(int nodes, std::uint64_t tasks) {
    head::HeadConfig cfg;
    cfg.node_timeout = std::chrono::seconds(30);
    cfg.announce = false;
    core = std::make_unique<head::HeadCore>(cfg, events);
    struct Model {
      const char* name;
      int mem;
      double price;
    };
    const Model models[] = {{"H100", 80, 2.4}, {"A100", 40, 1.3}, {"RTX4090", 24, 0.45}, {"L4", 24, 0.35},
                            {"RTX3090", 24, 0.25}, {"V100", 16, 0.3}, {"MI250", 64, 1.1}};
    const char* regions[] = {"eu", "us", "asia"};
    std::mt19937 rng(7);
    for (int i = 0; i < nodes; ++i) {
      const auto& md = models[rng() % 7];
      sched::Node n;
      n.name = "provider-" + std::to_string(i);
      n.total.cpus = sched::to_milli(double(16 + 8 * (rng() % 7)));
      n.total.memory_mib = 65536;
      const int g = 1 + int(rng() % 8);
      for (int k = 0; k < g; ++k) {
        sched::Gpu gpu;
        gpu.model = md.name;
        gpu.memory_mib = md.mem * 1024;
        gpu.verified = rng() % 5 != 0;
        n.gpus.push_back(gpu);
      }
      n.labels["region"] = regions[rng() % 3];
      n.price_per_gpu_hour = md.price * (0.8 + 0.4 * double(rng() % 100) / 100.0);
      n.available = n.total;
      head::Join j;
      j.node = n;
      j.host = "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256);
      auto joined = core->join(std::move(j));
      core->admit(joined.index);
      names.push_back(joined.name);
      gpus_of.push_back(g);
    }
    // Drivers: one job per 20,000 spans (what a job keeps), each with its counts and spans.
    const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch()).count();
    for (std::uint64_t done = 0, job = 0; done < tasks; ++job) {
      const auto n = std::min<std::uint64_t>(head::TaskBook::kSpansPerJob, tasks - done);
      head::Registration r;
      r.driver = "driver-" + std::to_string(job) + "@10.9.0.1";
      r.code_hash = "bench";
      r.owner_host = "10.9.0.1";
      r.owner_port = 4000;
      core->register_owner(job + 1, r);
      nlohmann::json rep;
      rep["tasks"]["task"] = {{"submitted", n + 10}, {"waiting", 6}, {"running", 4}, {"finished", n - n / 100}, {"failed", n / 100}};
      rep["duration_buckets"] = {0.001, 0.01, 0.1, 1.0};
      rep["duration_counts"] = {n / 4, n / 2, n / 5, n - n / 4 - n / 2 - n / 5, 0};
      rep["duration_sum_s"] = double(n) * 0.02;
      auto& spans = rep["spans"] = nlohmann::json::array();
      for (std::uint64_t k = 0; k < n; ++k) {
        const auto start = now_ms - 600'000 + std::int64_t(k * 600'000 / n);
        spans.push_back({"step_" + std::to_string(k % 97), names[rng() % names.size()], start, start + 5 + std::int64_t(rng() % 200),
                         k % 100 != 0, 0});
      }
      core->task_report(job + 1, rep.dump());
      done += n;
    }
    beat = std::thread([this] { run(); });
  }
  ~BigHead() {
    stop = true;
    beat.join();
  }
  // Every node heartbeats once a second with telemetry per GPU; the core ticks every 100 ms.
  void run() {
    std::mt19937 rng(11);
    std::size_t next = 0;
    auto last_tick = Clock::now();
    while (!stop) {
      const auto t0 = Clock::now();
      {
        std::lock_guard<std::mutex> g(m);
        const std::size_t batch = std::max<std::size_t>(1, names.size() / 10);  // a tenth of the nodes per 100 ms
        for (std::size_t k = 0; k < batch; ++k, next = (next + 1) % names.size()) {
          if (!core->nodes().alive(static_cast<std::uint32_t>(next))) continue;
          std::vector<gpu::Telemetry> tel;
          for (int d = 0; d < gpus_of[next]; ++d)
            tel.push_back({d, 55.0 + double(rng() % 30), 200.0 + double(rng() % 400), 700, double(rng() % 100), 20, 1700, 2600});
          core->heartbeat(static_cast<std::uint32_t>(next), {1 << 20, 1 << 30, 3, 0}, std::move(tel));
        }
        if (Clock::now() - last_tick >= std::chrono::milliseconds(100)) {
          last_tick = Clock::now();
          core->tick();
        }
      }
      std::this_thread::sleep_until(t0 + std::chrono::milliseconds(100));
    }
  }
  // As the cluster head does it: the tables copied on the head's thread, the JSON made outside it.
  nlohmann::json status() {
    kj::Array<capnp::word> message;
    {
      std::lock_guard<std::mutex> g(m);
      message = runtime::cluster::head_status_message(*core, "bench");
    }
    return runtime::cluster::status_document_json(message);
  }
  std::string admin(const std::string& command, const std::string& args, const std::string& who) {
    std::lock_guard<std::mutex> g(m);
    return core->admin(0, 0, who, command, args).value_or("{}");
  }
  void kill(const std::string& name) {
    std::lock_guard<std::mutex> g(m);
    for (std::uint32_t i = 0; i < names.size(); ++i)
      if (names[i] == name) core->node_lost(i, "killed by the bench");
  }
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One GET with the bench's key over this thread's kept-alive connection (as a browser does; a new one when the
// server closed it): the seconds it took and the body's size (throws on a non-200 answer).
std::pair<double, std::size_t> get(std::uint16_t port, const std::string& target) {
  const auto t0 = Clock::now();
  thread_local boost::asio::io_context io;
  thread_local std::unique_ptr<boost::beast::tcp_stream> s;
  thread_local boost::beast::flat_buffer buf;
  for (int attempt = 0;; ++attempt) {
    try {
      if (!s) {
        s = std::make_unique<boost::beast::tcp_stream>(io);
        s->connect({boost::asio::ip::make_address("127.0.0.1"), port});
        s->socket().set_option(boost::asio::ip::tcp::no_delay(true));
        buf.clear();
      }
      http::request<http::empty_body> req{http::verb::get, target, 11};
      req.set(http::field::host, "127.0.0.1");
      req.set(http::field::authorization, std::string("Bearer ") + kKey);
      http::write(*s, req);
      http::response_parser<http::string_body> parser;
      parser.body_limit(1ull << 30);
      http::read(*s, buf, parser);
      if (!parser.get().keep_alive()) s.reset();
      if (parser.get().result() != http::status::ok)
        throw std::runtime_error(target + " answered " + std::to_string(parser.get().result_int()));
      return {secs(t0, Clock::now()), parser.get().body().size()};
    } catch (const boost::system::system_error&) {
      s.reset();  // the server closed an idle connection: once more on a new one
      if (attempt > 0) throw;
    }
  }
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * double(v.size() - 1) + 0.5))];
}

std::string ui_dir() {
  if (const char* d = std::getenv("IOGRID_UI_DIR"); d && *d) return d;
  return std::string(IOGRID_SOURCE_DIR) + "/ui";
}

}  // namespace

int run_ui(const Options& o, int nodes, std::uint64_t tasks) {
  const std::vector<std::string> names = {"ui_first_paint_explorer_ms", "ui_first_paint_worker_ms", "ui_first_paint_console_ms",
                                          "ui_event_latency_ms", "head_cpu_idle_pct", "head_cpu_50_tabs_pct",
                                          "api_p50_ms", "api_p99_ms", "api_status_ms", "status_document_mb"};
  auto want = selection(o, "ui", names);
  std::vector<Figure> out;
  progress(o, "starting a head with " + std::to_string(nodes) + " nodes and " + std::to_string(tasks) + " task spans");
  BigHead big(nodes, tasks);
  runtime::cluster::DashboardSource src;
  src.status_json = [&] { return big.status(); };
  src.admin = [&](const std::string& c, const std::string& a, const std::string& w) { return big.admin(c, a, w); };
  src.history = big.core->history();
  runtime::cluster::Dashboard dash(0, "127.0.0.1", src, {kKey, ""});
  const auto port = dash.port();
  progress(o, "dashboard on http://127.0.0.1:" + std::to_string(port) + "/ (key " + kKey + ")");
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a round of heartbeats with telemetry

  if (want("api_status_ms") || want("status_document_mb")) {
    std::vector<double> t;
    std::size_t bytes = 0;
    for (int r = 0; r < std::max(3, o.runs); ++r) {
      auto [s, b] = get(port, "/api/v1/status?run=" + std::to_string(r));
      t.push_back(s * 1000);
      bytes = b;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // past the 250 ms cache
    }
    if (want("api_status_ms")) out.push_back({"api_status_ms", median(t), "ms", false, t});
    if (want("status_document_mb")) out.push_back({"status_document_mb", double(bytes) / 1e6, "MB", false, {}});
  }
  if (want("api_p50_ms") || want("api_p99_ms")) {
    progress(o, "API mix at 200 requests/s for 10 s");
    const std::vector<std::string> mix = {"/api/v1/explorer", "/api/v1/nodes?limit=100&offset=", "/api/v1/events?limit=100",
                                          "/api/v1/history?series=cluster%2Fgpus_busy", "/api/v1/tasks?job=job-1&limit=100",
                                          "/api/v1/nodes?limit=50&model=H100&region=eu", "/api/v1/session"};
    // Steady state: the dashboard's first status snapshot of a head this size takes a second or so to build,
    // once; a head that has been up has it.
    get(port, "/api/v1/explorer");
    std::mutex lm;
    std::vector<double> lat;
    std::map<std::string, std::vector<double>> by_route;
    std::atomic<int> errors{0};
    std::vector<std::thread> pool;
    const int total = 2000;
    const auto start = Clock::now() + std::chrono::milliseconds(100);
    std::atomic<int> next{0};
    for (int w = 0; w < 16; ++w)
      pool.emplace_back([&] {
        for (int i; (i = next.fetch_add(1)) < total;) {
          const auto planned = start + std::chrono::microseconds(i * 5000);  // 200/s
          std::this_thread::sleep_until(planned);
          auto target = mix[std::size_t(i) % mix.size()];
          if (target.back() == '=') target += std::to_string((i * 37) % std::max(1, nodes - 100));
          try {
            const auto t0 = Clock::now();
            get(port, target);
            std::lock_guard<std::mutex> g(lm);
            lat.push_back(secs(planned, Clock::now()) * 1000);
            by_route[mix[std::size_t(i) % mix.size()]].push_back(secs(t0, Clock::now()) * 1000);
          } catch (const std::exception& e) {
            if (errors++ == 0) progress(o, std::string("API error: ") + e.what());
          }
        }
      });
    for (auto& t : pool) t.join();
    if (errors) progress(o, std::to_string(errors.load()) + " API requests failed");
    for (const auto& [route, v] : by_route)
      progress(o, route + ": served in " + std::to_string(quantile(v, 0.5)) + " ms (p50), " + std::to_string(quantile(v, 0.99)) + " ms (p99)");
    if (want("api_p50_ms")) out.push_back({"api_p50_ms", quantile(lat, 0.5), "ms", false, {}});
    if (want("api_p99_ms")) out.push_back({"api_p99_ms", quantile(lat, 0.99), "ms", false, {}});
  }
  if (want("head_cpu_idle_pct")) {
    const auto c0 = cpu_seconds();
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(10));
    out.push_back({"head_cpu_idle_pct", 100 * (cpu_seconds() - c0) / secs(t0, Clock::now()), "%", false, {}});
  }
  const bool browser_rows = want("ui_first_paint_explorer_ms") || want("ui_first_paint_worker_ms") ||
                            want("ui_first_paint_console_ms") || want("ui_event_latency_ms") || want("head_cpu_50_tabs_pct");
  const auto script = ui_dir() + "/test/bench.mjs";
  std::string why_not;
  if (!std::filesystem::exists(script)) why_not = "no " + script + " (set IOGRID_UI_DIR to the source tree's ui/)";
  else if (!std::filesystem::exists(ui_dir() + "/node_modules/puppeteer-core")) why_not = "no ui/node_modules (scripts/setup)";
  else if (!std::filesystem::exists("/usr/bin/chromium") && !std::getenv("IOGRID_CHROMIUM")) why_not = "no chromium (scripts/setup)";
  else if (std::system("node --version >/dev/null 2>&1") != 0) why_not = "no node";
  if (browser_rows && !why_not.empty()) progress(o, "browser rows left out: " + why_not);
  if (browser_rows && why_not.empty()) {
    progress(o, "headless chromium: first paints, a node's death on the page, 50 tabs");
    std::vector<std::string> victims;
    for (int k = 0; k < 5; ++k) victims.push_back(big.names[std::size_t(nodes / 2 + 17 * k) % big.names.size()]);
    std::string list;
    for (const auto& v : victims) list += (list.empty() ? "" : ",") + v;
    const char* tab_view = std::getenv("IOGRID_BENCH_UI_TABS");
    const auto cmd = "node " + script + " http://127.0.0.1:" + std::to_string(port) + " " + kKey + " " + list + " 50 12 " +
                     std::to_string(o.runs) + " " + (tab_view && *tab_view ? tab_view : "explorer") + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("cannot start " + cmd);
    std::map<std::string, std::vector<double>> paints;
    std::vector<double> deaths;
    std::map<std::string, std::int64_t> killed_at;
    double cpu0 = 0;
    Clock::time_point tabs_at{};
    double tabs_pct = -1;
    std::string tail;
    char line[4096];
    while (std::fgets(line, sizeof line, p)) {
      std::istringstream in(line);
      std::string what, a;
      in >> what >> a;
      if (what == "PAINT") {
        double ms = 0;
        in >> ms;
        paints[a].push_back(ms);
      } else if (what == "WATCH") {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        killed_at[a] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        big.kill(a);
      } else if (what == "DEAD") {
        std::int64_t at = 0;
        in >> at;
        deaths.push_back(double(at - killed_at[a]));
      } else if (what == "TABS" && a != "0") {
        std::this_thread::sleep_for(std::chrono::seconds(2));  // the tabs settle
        cpu0 = cpu_seconds();
        tabs_at = Clock::now();
        std::this_thread::sleep_for(std::chrono::seconds(8));
        tabs_pct = 100 * (cpu_seconds() - cpu0) / secs(tabs_at, Clock::now());
      } else if (what != "TABS") {
        tail += line;
      }
    }
    const int rc = pclose(p);
    if (rc != 0) progress(o, "the browser script failed (" + std::to_string(rc) + "):\n" + tail);
    for (const char* v : {"explorer", "worker", "console"}) {
      const auto name = std::string("ui_first_paint_") + v + "_ms";
      if (want(name) && !paints[v].empty()) out.push_back({name, median(paints[v]), "ms", false, paints[v]});
    }
    if (want("ui_event_latency_ms") && !deaths.empty()) out.push_back({"ui_event_latency_ms", median(deaths), "ms", false, deaths});
    if (want("head_cpu_50_tabs_pct") && tabs_pct >= 0) out.push_back({"head_cpu_50_tabs_pct", tabs_pct, "%", false, {}});
  }
  print("ui", o, out);
  return 0;
}

}  // namespace iogrid::bench
