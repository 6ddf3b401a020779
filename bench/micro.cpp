// `iogrid bench micro`: Ray's core microbenchmarks, measured the way Ray measures them.
//   *_sync:  submit one, get it, repeat.     *_async: submit a batch, then get all.
//   wait_1k_refs: submit 1000 tasks, then wait(k=1) until none is left, repeatedly.
//   put_gigabytes: put of a 100 MiB buffer passed by const reference (one copy into the store).
//   queued_1m_tasks: 1,000,000 no-op tasks submitted at once, time to the last result and peak RSS.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <iogrid/iogrid.hpp>
#include <vector>

#include "runtime/cluster/local_cluster.hpp"
#include "bench/report.hpp"

namespace {

int noop() { return 0; }
IOGRID_REMOTE(noop);
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
IOGRID_REMOTE(sleep_ms);
std::vector<std::uint8_t> blob(std::uint64_t n) { return std::vector<std::uint8_t>(n, 7); }
IOGRID_REMOTE(blob);
// The pull that brought `v` to this worker: bytes moved (the serialised object) and seconds taken.
std::pair<std::uint64_t, double> pulled(const std::vector<std::uint8_t>& v) {
  auto s = iogrid::transfer_stats();
  return {s.last_bytes >= v.size() ? s.last_bytes : 0, s.last_seconds};
}
IOGRID_REMOTE(pulled);

struct Counter {
  int n = 0;
  int inc() { return ++n; }
};
IOGRID_REMOTE(&Counter::inc);

using Clock = std::chrono::steady_clock;
using iogrid::bench::secs;

// Repeats `batch` (which does `per_batch` operations) for about `seconds`; returns operations per second.
double rate(double seconds, std::size_t per_batch, const std::function<void()>& batch) {
  batch();  // warm-up
  auto t0 = Clock::now();
  std::size_t ops = 0;
  do {
    batch();
    ops += per_batch;
  } while (secs(t0, Clock::now()) < seconds);
  return double(ops) / secs(t0, Clock::now());
}

double peak_rss_gib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024.0 / double(1ull << 30);
}

}  // namespace

namespace iogrid::bench {

namespace {

double tasks_async_rate(double seconds) {
  return rate(seconds, 1000, [] {
    std::vector<ObjectRef<int>> refs;
    refs.reserve(1000);
    for (int i = 0; i < 1000; ++i) refs.push_back(iogrid::task(noop).remote());
    (void)iogrid::get(refs);
  });
}

bool has_node(const std::string& name) {
  for (const auto& n : iogrid::nodes())
    if (n.name == name) return true;
  return false;
}

// Seconds from `signal` sent to a busy node until the head has declared it dead; the tasks it was running are
// retried elsewhere and must all come back right.
double failure_detection(runtime::cluster::LocalCluster& d, const std::string& name, int signal) {
  auto& victim = d.add_node(name, {"--num-cpus", "2"});
  auto t_join = Clock::now();
  while (!has_node(name)) {
    if (secs(t_join, Clock::now()) > 10) throw std::runtime_error("node " + name + " did not join");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<ObjectRef<int>> refs;
  for (int i = 0; i < 12; ++i) refs.push_back(iogrid::task(sleep_ms).options({.max_retries = 3}).remote(400));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto t0 = Clock::now();
  victim.kill(signal);
  while (has_node(name)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  double detected = secs(t0, Clock::now());
  for (auto& r : refs)
    if (iogrid::get(r, std::chrono::seconds(60)) != 400) throw std::runtime_error("a retried task returned a wrong value");
  victim.kill(SIGKILL);
  return detected;
}

}  // namespace

int run_micro_client(const std::string& address, const std::string& token_file, double seconds) {
  InitOptions io;
  io.address = address;
  io.token_file = token_file;
  iogrid::init(io);
  double r = tasks_async_rate(seconds);
  iogrid::shutdown();
  std::cout << "RATE " << r << std::endl;
  return 0;
}

int run_micro(const Options& o) {
  if (o.mode != "embedded" && o.mode != "cluster") {
    std::cerr << "iogrid bench micro: unknown mode '" << o.mode << "' (embedded or cluster)\n";
    return 2;
  }
  const bool cluster = o.mode == "cluster";
  auto wanted = selection(o, "micro", {
        "single_client_tasks_sync",
        "single_client_tasks_async",
        "1_1_actor_calls_sync",
        "1_1_actor_calls_async",
        "single_client_wait_1k_refs",
        "single_client_put_gigabytes",
        "multi_client_tasks_async",
        "object_transfer_1GiB_GBps",
        "node_failure_detect_seconds",
        "node_hang_detect_seconds",
        "queued_1m_tasks_seconds"});
  std::vector<Figure> figs;
  auto measure = [&](const std::string& name, const std::string& unit, bool higher, const std::function<double()>& run,
                     int runs) {
    if (!wanted(name)) return;
    Figure f{name, 0, unit, higher, {}};
    for (int i = 0; i < runs; ++i) {
      f.runs.push_back(run());
      progress(o, name + " run " + std::to_string(i + 1) + "/" + std::to_string(runs) + ": " +
                      std::to_string(f.runs.back()) + " " + unit);
    }
    f.value = median(f.runs);
    figs.push_back(std::move(f));
  };

  // Cluster mode: a head and two 2-CPU node processes on this machine; this process is the driver.
  std::unique_ptr<runtime::cluster::LocalCluster> daemons;
  InitOptions io;
  if (cluster) {
    daemons = std::make_unique<runtime::cluster::LocalCluster>(runtime::cluster::LocalClusterOptions{
        .iogrid = std::filesystem::read_symlink("/proc/self/exe").string(), .state = false, .log_level = "warn",
        .prefix = "iogrid-bench"});
    daemons->add_node("bench-1", {"--num-cpus", "2"});
    daemons->add_node("bench-2", {"--num-cpus", "2"});
    io.address = daemons->address();
    io.token_file = daemons->token_file();
    progress(o, "cluster: head at " + io.address + ", nodes bench-1 and bench-2 (2 CPUs each)");
  }
  iogrid::init(io);
  if (cluster) {
    auto t0 = Clock::now();
    while (iogrid::nodes().size() < 2) {
      if (secs(t0, Clock::now()) > 15) throw std::runtime_error("the bench nodes did not join the head");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  measure("single_client_tasks_sync", "/s", true, [&] {
    return rate(o.seconds, 100, [] {
      for (int i = 0; i < 100; ++i) (void)iogrid::get(iogrid::task(noop).remote());
    });
  }, o.runs);
  measure("single_client_tasks_async", "/s", true, [&] { return tasks_async_rate(o.seconds); }, o.runs);
  {
    auto actor = iogrid::actor<Counter>().remote();
    measure("1_1_actor_calls_sync", "/s", true, [&] {
      return rate(o.seconds, 100, [&] {
        for (int i = 0; i < 100; ++i) (void)iogrid::get(actor.call(&Counter::inc).remote());
      });
    }, o.runs);
    measure("1_1_actor_calls_async", "/s", true, [&] {
      return rate(o.seconds, 1000, [&] {
        std::vector<ObjectRef<int>> refs;
        refs.reserve(1000);
        for (int i = 0; i < 1000; ++i) refs.push_back(actor.call(&Counter::inc).remote());
        (void)iogrid::get(refs);
      });
    }, o.runs);
  }
  measure("single_client_wait_1k_refs", "/s", true, [&] {
    return rate(o.seconds, 1, [] {
      std::vector<ObjectRef<int>> not_ready;
      not_ready.reserve(1000);
      for (int i = 0; i < 1000; ++i) not_ready.push_back(iogrid::task(noop).remote());
      while (!not_ready.empty()) not_ready = iogrid::wait(not_ready, 1).not_ready;
    });
  }, o.runs);
  if (!cluster)
    measure("single_client_put_gigabytes", "GB/s", true, [&] {
      std::vector<std::uint8_t> buf(100u << 20, 1);
      const auto& cref = buf;
      double r = rate(o.seconds, 1, [&] { (void)iogrid::put(cref); });
      return r * double(buf.size()) / 1e9;
    }, o.runs);
  if (cluster) {
    // Two more driver processes submit at the same time; the figure is their summed rate.
    measure("multi_client_tasks_async", "/s", true, [&] {
      std::vector<runtime::cluster::ChildProcess*> clients;
      for (int c = 0; c < 2; ++c)
        clients.push_back(&daemons->command({"bench", "micro-client", "--address", daemons->address(), "--token-file",
                                             daemons->token_file(), "--seconds", std::to_string(o.seconds)}));
      double total = 0;
      for (auto* c : clients) {
        c->wait();
        const auto text = c->output();
        std::string word;
        double r = 0;
        for (std::istringstream words(text); words >> word;)
          if (word == "RATE") words >> r;
        if (r <= 0) throw std::runtime_error("a benchmark client reported no rate:\n" + text);
        total += r;
      }
      return total;
    }, o.runs);
    // A 1 GiB object made on one node and pulled by a task on the other: the data plane's rate.
    measure("object_transfer_1GiB_GBps", "GB/s", true, [&] {
      auto obj = iogrid::task(blob).options({.node = "bench-1"}).remote(std::uint64_t(1) << 30);
      auto r = iogrid::get(iogrid::task(pulled).options({.node = "bench-2"}).remote(obj), std::chrono::seconds(300));
      if (r.first < (std::uint64_t(1) << 30) || r.second <= 0) throw std::runtime_error("the 1 GiB object was not pulled over the data plane");
      return double(r.first) / r.second / 1e9;
    }, std::min(o.runs, 3));
    int k = 0;
    measure("node_failure_detect_seconds", "s", false, [&] {
      return failure_detection(*daemons, "victim-" + std::to_string(++k), SIGKILL);
    }, o.runs);
    measure("node_hang_detect_seconds", "s", false, [&] {
      return failure_detection(*daemons, "frozen-" + std::to_string(++k), SIGSTOP);
    }, std::min(o.runs, 3));
  }
  iogrid::shutdown();

  if (!cluster && wanted("queued_1m_tasks_seconds")) {
    Figure t{"queued_1m_tasks_seconds", 0, "s", false, {}};
    Figure m{"queued_1m_tasks_peak_rss_gib", 0, "GiB", false, {}};
    iogrid::init();
    const int n = 1000000;
    auto t0 = Clock::now();
    ObjectRef<int> last;
    {
      std::vector<ObjectRef<int>> refs;
      refs.reserve(n);
      for (int i = 0; i < n; ++i) refs.push_back(iogrid::task(noop).remote());
      last = refs.back();
      progress(o, "queued_1m_tasks: submitted 1,000,000 tasks in " + std::to_string(secs(t0, Clock::now())) + " s");
      (void)iogrid::get(refs);
    }
    t.runs.push_back(secs(t0, Clock::now()));
    m.runs.push_back(peak_rss_gib());
    t.value = t.runs[0];
    m.value = m.runs[0];
    iogrid::shutdown();
    figs.push_back(t);
    figs.push_back(m);
  }
  print("micro", o, figs);
  return 0;
}

}  // namespace iogrid::bench
