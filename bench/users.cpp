// `iogrid bench users`: cluster mode under many users at once (a head, two 2-CPU node processes, all here).
//   users_*: --drivers N driver processes (default 32) start together; each submits --tasks T small tasks
//     (default 20,000) and checks every result, then --big B tasks (default 200) that each return an 8 MiB
//     value made on a node, pulled over the data plane and checked byte for byte (at most 8 in flight per
//     driver). Meanwhile --pollers P clients (default 20) poll the head's status API (HTTP GET /api/status) in a
//     loop. Figures: results checked / wrong / lost (wrong and lost must be 0), wall time, the slowest driver's
//     time over the fastest one's (fair share: no driver starves), the status API's p50/p99/max latency, and
//     the head's and nodes' resident memory before (after a warm-up job), at the peak, and after every driver
//     exited (given 20 s to settle).
//   queued_1m_*: one driver process submits 1,000,000 small tasks before it gets any, then gets them all:
//     seconds, and the peak resident memory of the head, the nodes (together) and the driver.
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iogrid/iogrid.hpp>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "bench/report.hpp"
#include "runtime/cluster/local_cluster.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kBigBytes = 8u << 20;
constexpr int kBigInFlight = 8;

std::uint64_t users_small(std::uint64_t driver, std::uint64_t i) { return (driver * 1000003u + i) * 2654435761u % 1000000007u; }
IOGRID_REMOTE(users_small);

std::vector<std::uint8_t> users_big(std::uint64_t seed) {
  std::vector<std::uint8_t> v(kBigBytes);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < v.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(v.data() + i, &x, 8);
  }
  return v;
}
IOGRID_REMOTE(users_big);

}  // namespace

namespace iogrid::bench {

// One driver of the users suite (a process of its own, started by run_users through `iogrid bench
// users-driver`): prints "USERS checked=C wrong=W lost=L seconds=S" and exits 0 when it got that far.
int run_users_driver(std::uint64_t index, std::uint64_t tasks, std::uint64_t big) {
  iogrid::init();  // IOGRID_ADDRESS / IOGRID_TOKEN_FILE from the environment
  std::uint64_t checked = 0, wrong = 0, lost = 0;
  auto t0 = Clock::now();
  {
    std::vector<ObjectRef<std::uint64_t>> refs;
    refs.reserve(tasks);
    for (std::uint64_t i = 0; i < tasks; ++i) refs.push_back(iogrid::task(users_small).remote(index, i));
    for (std::uint64_t i = 0; i < tasks; ++i) {
      try {
        ++checked;
        if (iogrid::get(refs[i], 600s) != users_small(index, i)) ++wrong;
      } catch (const std::exception& e) {
        ++lost;
        if (lost <= 3) std::cerr << "users driver " << index << ": task " << i << " failed: " << e.what() << "\n";
      }
    }
  }
  std::deque<std::pair<std::uint64_t, ObjectRef<std::vector<std::uint8_t>>>> window;
  auto check_front = [&] {
    auto [seed, ref] = window.front();
    window.pop_front();
    ++checked;
    try {
      if (iogrid::get(ref, 600s) != users_big(seed)) ++wrong;
    } catch (const std::exception& e) {
      ++lost;
      if (lost <= 3) std::cerr << "users driver " << index << ": big task " << seed << " failed: " << e.what() << "\n";
    }
  };
  for (std::uint64_t i = 0; i < big; ++i) {
    const auto seed = index * 100000 + i;
    window.emplace_back(seed, iogrid::task(users_big).remote(seed));
    if (window.size() >= kBigInFlight) check_front();
  }
  while (!window.empty()) check_front();
  const double seconds = secs(t0, Clock::now());
  iogrid::shutdown();
  std::cout << "USERS checked=" << checked << " wrong=" << wrong << " lost=" << lost << " seconds=" << seconds << std::endl;
  return 0;
}

namespace {

using runtime::cluster::ChildProcess;
using runtime::cluster::LocalCluster;

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

double rss_mib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * double(v.size() - 1) + 0.5))];
}

// GET /api/status on the head's dashboard: the seconds it took (throws when it fails).
double get_status(const std::string& host, int port, const std::string& key) {
  namespace http = boost::beast::http;
  auto t0 = Clock::now();
  boost::asio::io_context io;
  boost::beast::tcp_stream s(io);
  s.expires_after(30s);
  s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), static_cast<std::uint16_t>(port)));
  http::request<http::empty_body> req{http::verb::get, "/api/status", 11};
  req.set(http::field::host, host);
  req.set(http::field::authorization, "Bearer " + key);
  http::write(s, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  if (res.result() != http::status::ok || res.body().find("\"nodes\"") == std::string::npos)
    throw std::runtime_error("the status API answered " + std::to_string(res.result_int()));
  return secs(t0, Clock::now());
}

struct Sampler {
  std::vector<pid_t> head, nodes, drivers;
  double head_peak = 0, nodes_peak = 0, driver_peak = 0;
  std::atomic<bool> stop{false};
  std::thread t;
  std::mutex m;
  void start() {
    t = std::thread([this] {
      while (!stop) {
        {
          std::lock_guard<std::mutex> g(m);
          double h = 0, n = 0;
          for (auto p : head) h += rss_mib(p);
          for (auto p : nodes) n += rss_mib(p);
          head_peak = std::max(head_peak, h);
          nodes_peak = std::max(nodes_peak, n);
          for (auto p : drivers) driver_peak = std::max(driver_peak, rss_mib(p));
        }
        std::this_thread::sleep_for(100ms);
      }
    });
  }
  void finish() {
    stop = true;
    if (t.joinable()) t.join();
  }
  ~Sampler() { finish(); }
};

double sum_rss(const std::vector<pid_t>& pids) {
  double s = 0;
  for (auto p : pids) s += rss_mib(p);
  return s;
}

}  // namespace

int run_users(const Options& o, const UsersOptions& u) {
  auto wanted = selection(o, "users", {
        "users_results_checked", "users_wrong_results", "users_lost_results", "users_wall_seconds",
        "users_slowest_over_fastest_driver", "users_status_p50_ms", "users_status_p99_ms", "users_status_max_ms",
        "users_head_rss_baseline_mib", "users_head_rss_peak_mib", "users_head_rss_after_mib",
        "users_nodes_rss_baseline_mib", "users_nodes_rss_peak_mib", "users_nodes_rss_after_mib",
        "queued_1m_seconds", "queued_1m_head_peak_rss_mib", "queued_1m_nodes_peak_rss_mib", "queued_1m_driver_peak_rss_mib"});
  std::vector<Figure> figs;
  auto add = [&](const std::string& name, double v, const std::string& unit, bool higher) {
    if (wanted(name)) figs.push_back(Figure{name, v, unit, higher, {v}});
  };
  std::vector<std::string> head_args;
  if (u.fair_quantum_ms >= 0) head_args = {"--fair-quantum-ms", std::to_string(u.fair_quantum_ms)};
  LocalCluster c({.iogrid = self_exe(), .head_args = head_args, .state = false, .dashboard = true, .log_level = "warn",
                  .prefix = "iogrid-bench-users"});
  c.add_node("users-1", {"--num-cpus", "2"});
  c.add_node("users-2", {"--num-cpus", "2"});
  if (!c.wait_nodes(2)) throw std::runtime_error("the nodes did not join:\n" + c.logs());
  const std::vector<pid_t> head{c.head().pid()}, nodes{c.node("users-1").pid(), c.node("users-2").pid()};
  auto driver = [&](std::uint64_t index, std::uint64_t tasks, std::uint64_t big) -> ChildProcess& {
    return c.command({"bench", "users-driver", std::to_string(index), std::to_string(tasks), std::to_string(big)});
  };
  auto finish = [&](ChildProcess& d, const std::string& what) {
    if (d.wait(std::chrono::minutes(30)) != 0) throw std::runtime_error(what + " failed:\n" + d.output() + "\n" + c.logs());
    auto r = parse_tagged_line(d.output(), "USERS");
    if (r.empty()) throw std::runtime_error(what + " printed no result:\n" + d.output());
    return r;
  };

  bool any_users = false;
  for (const auto& f : {"users_results_checked", "users_wrong_results", "users_lost_results", "users_wall_seconds",
                        "users_slowest_over_fastest_driver", "users_status_p50_ms", "users_status_p99_ms",
                        "users_status_max_ms", "users_head_rss_baseline_mib", "users_head_rss_peak_mib",
                        "users_head_rss_after_mib", "users_nodes_rss_baseline_mib", "users_nodes_rss_peak_mib",
                        "users_nodes_rss_after_mib"})
    any_users = any_users || wanted(f);
  if (any_users) {
    // Warm-up: the code is stored, the nodes have started a worker once.
    finish(driver(9999, 1000, 2), "the warm-up driver");
    std::this_thread::sleep_for(2s);
    const double head_base = sum_rss(head), nodes_base = sum_rss(nodes);
    Sampler sampler;
    sampler.head = head;
    sampler.nodes = nodes;
    sampler.start();
    std::atomic<bool> polling{true};
    std::mutex lat_m;
    std::vector<double> latencies;
    std::atomic<int> poll_errors{0};
    std::string first_poll_error;
    std::vector<std::thread> pollers;
    const auto key = c.read_token();
    for (int p = 0; p < u.pollers; ++p)
      pollers.emplace_back([&] {
        while (polling) {
          try {
            auto s = get_status("127.0.0.1", c.dashboard_port(), key);  // the dashboard binds 127.0.0.1
            std::lock_guard<std::mutex> g(lat_m);
            latencies.push_back(s * 1000);
          } catch (const std::exception& e) {
            std::lock_guard<std::mutex> g(lat_m);
            if (poll_errors++ == 0) first_poll_error = e.what();
          }
          std::this_thread::sleep_for(200ms);
        }
      });
    progress(o, "users: " + std::to_string(u.drivers) + " drivers x " + std::to_string(u.tasks) + " tasks + " +
                    std::to_string(u.big) + " x 8 MiB results, " + std::to_string(u.pollers) + " status pollers");
    auto t0 = Clock::now();
    std::vector<ChildProcess*> ds;
    for (int i = 0; i < u.drivers; ++i) ds.push_back(&driver(std::uint64_t(i), u.tasks, u.big));
    double checked = 0, wrong = 0, lost = 0, fastest = 1e300, slowest = 0;
    for (int i = 0; i < u.drivers; ++i) {
      auto r = finish(*ds[std::size_t(i)], "driver " + std::to_string(i));
      checked += r["checked"];
      wrong += r["wrong"];
      lost += r["lost"];
      fastest = std::min(fastest, r["seconds"]);
      slowest = std::max(slowest, r["seconds"]);
    }
    const double wall = secs(t0, Clock::now());
    polling = false;
    for (auto& t : pollers) t.join();
    sampler.finish();
    if (poll_errors > 0)
      progress(o, "users: " + std::to_string(poll_errors.load()) + " status polls failed, the first: " + first_poll_error);
    // Memory back where it was: the lowest reading over 20 s after the last driver exited.
    double head_after = 1e300, nodes_after = 1e300;
    for (auto until = Clock::now() + 20s; Clock::now() < until;) {
      head_after = std::min(head_after, sum_rss(head));
      nodes_after = std::min(nodes_after, sum_rss(nodes));
      if (head_after <= head_base * 1.1 + 16 && nodes_after <= nodes_base * 1.1 + 32) break;
      std::this_thread::sleep_for(500ms);
    }
    progress(o, "users: " + std::to_string(std::uint64_t(checked)) + " results checked in " + std::to_string(wall) +
                    " s; head " + std::to_string(int(head_base)) + " -> " + std::to_string(int(sampler.head_peak)) +
                    " -> " + std::to_string(int(head_after)) + " MiB, nodes " + std::to_string(int(nodes_base)) + " -> " +
                    std::to_string(int(sampler.nodes_peak)) + " -> " + std::to_string(int(nodes_after)) + " MiB");
    add("users_results_checked", checked, "results", true);
    add("users_wrong_results", wrong, "results", false);
    add("users_lost_results", lost + double(poll_errors.load()), "results", false);
    add("users_wall_seconds", wall, "s", false);
    add("users_slowest_over_fastest_driver", fastest > 0 ? slowest / fastest : 0, "x", false);
    add("users_status_p50_ms", quantile(latencies, 0.5), "ms", false);
    add("users_status_p99_ms", quantile(latencies, 0.99), "ms", false);
    add("users_status_max_ms", quantile(latencies, 1.0), "ms", false);
    add("users_head_rss_baseline_mib", head_base, "MiB", false);
    add("users_head_rss_peak_mib", sampler.head_peak, "MiB", false);
    add("users_head_rss_after_mib", head_after, "MiB", false);
    add("users_nodes_rss_baseline_mib", nodes_base, "MiB", false);
    add("users_nodes_rss_peak_mib", sampler.nodes_peak, "MiB", false);
    add("users_nodes_rss_after_mib", nodes_after, "MiB", false);
  }
  if (wanted("queued_1m_seconds") || wanted("queued_1m_head_peak_rss_mib") || wanted("queued_1m_nodes_peak_rss_mib") ||
      wanted("queued_1m_driver_peak_rss_mib")) {
    progress(o, "users: one driver, " + std::to_string(u.queued) + " tasks queued before any is got");
    Sampler sampler;
    sampler.head = head;
    sampler.nodes = nodes;
    auto t0 = Clock::now();
    auto& d = driver(424242, u.queued, 0);
    sampler.drivers = {d.pid()};
    sampler.start();
    auto r = finish(d, "the 1M-task driver");
    const double seconds = secs(t0, Clock::now());
    sampler.finish();
    if (r["wrong"] + r["lost"] > 0)
      throw std::runtime_error("the queued driver got " + std::to_string(r["wrong"]) + " wrong and " +
                               std::to_string(r["lost"]) + " lost results:\n" + d.output());
    progress(o, "users: " + std::to_string(u.queued) + " queued tasks in " + std::to_string(seconds) + " s; peaks: head " +
                    std::to_string(int(sampler.head_peak)) + " MiB, nodes " + std::to_string(int(sampler.nodes_peak)) +
                    " MiB, driver " + std::to_string(int(sampler.driver_peak)) + " MiB");
    add("queued_1m_seconds", seconds, "s", false);
    add("queued_1m_head_peak_rss_mib", sampler.head_peak, "MiB", false);
    add("queued_1m_nodes_peak_rss_mib", sampler.nodes_peak, "MiB", false);
    add("queued_1m_driver_peak_rss_mib", sampler.driver_peak, "MiB", false);
  }
  if (c.head().output().find("is dead") != std::string::npos)
    progress(o, "users: the head declared a node dead during the run:\n" + c.logs());
  Options shown = o;
  shown.mode = "cluster";  // what this suite measures, whatever --mode said
  print("users", shown, figs);
  return 0;
}

}  // namespace iogrid::bench
