// `iogrid bench chaos`: cluster mode under work it must survive.
//   nested_depth16_*: a recursive program (fan-out 2, depth 16: 65,535 tasks, each waiting for its children),
//     embedded and on a head with two 2-CPU node processes; worker_processes_per_node_peak: the most worker
//     processes one node ran meanwhile (sampled every 20 ms).
//   chaos_*: a head (with --state) and four 2-CPU nodes run a mixed workload for --minutes M (default 1): task
//     graphs over 4 MiB objects, recursive trees, calls to actors with max_restarts and
//     max_task_retries, allreduces of a collective group of two actors (a round whose member died starts again
//     with a new group, up to 3 times). Meanwhile a supervisor SIGKILLs (and restarts), SIGSTOPs (and SIGCONTs) or
//     restarts a random node every few seconds, never more than two at once, and kills the head once (restarted
//     with its --state). Every result is checked against its expected value:
//       chaos_results_checked, chaos_wrong_results (must be 0), chaos_lost_results (work that failed; each
//       reason is printed), chaos_recovery_p50/p99_seconds (from a node's SIGKILL until it is back in the
//       cluster and runs a task pinned to it), chaos_false_deaths (nodes the head declared dead while they were
//       neither killed nor stopped; must be 0).
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iogrid/iogrid.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "bench/report.hpp"
#include "runtime/cluster/local_cluster.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Fan-out 2, depth d: returns the number of tasks in the subtree (2^d - 1).
long chaos_tree(int d) {
  if (d == 1) return 1;
  auto a = iogrid::task(chaos_tree).options({.max_retries = 10}).remote(d - 1);
  auto b = iogrid::task(chaos_tree).options({.max_retries = 10}).remote(d - 1);
  return 1 + iogrid::get(a) + iogrid::get(b);
}
IOGRID_REMOTE(chaos_tree);

// A 4 MiB object whose bytes follow from `seed`, and its checksum computed where it is pulled to.
std::vector<std::uint8_t> chaos_blob(std::uint64_t seed) {
  std::vector<std::uint8_t> v(4u << 20);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<std::uint8_t>(x);
  }
  return v;
}
IOGRID_REMOTE(chaos_blob);
std::uint64_t chaos_sum(const std::vector<std::uint8_t>& v) {
  std::uint64_t s = 0;
  for (auto b : v) s = s * 31 + b;
  return s;
}
IOGRID_REMOTE(chaos_sum);

std::string chaos_where() { return iogrid::current_node(); }
IOGRID_REMOTE(chaos_where);

class ChaosSquarer {
 public:
  long square(long x) { return x * x; }
};
IOGRID_REMOTE(&ChaosSquarer::square);

// A member of a two-actor collective group: allreduce(sum) of {rank + 1} gives 3 on both.
class ChaosMember {
 public:
  ChaosMember(std::string group, int rank) : group_(std::move(group)), rank_(rank) {}
  double reduce() {
    if (!g_) g_ = std::make_unique<iogrid::collective::Group>(iogrid::collective::Group::join(group_, rank_, 2));
    std::vector<float> v{float(rank_ + 1)};
    g_->allreduce(v, iogrid::collective::ReduceOp::sum);
    return v[0];
  }

 private:
  std::string group_;
  int rank_;
  std::unique_ptr<iogrid::collective::Group> g_;
};
IOGRID_REMOTE(&ChaosMember::reduce);

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// "[2026-11-29 22:03:48.075] ..." -> milliseconds since the epoch (local time as the daemons print it).
std::int64_t log_ms(const std::string& line) {
  std::tm tm{};
  int ms = 0;
  if (line.size() < 25 || std::sscanf(line.c_str(), "[%d-%d-%d %d:%d:%d.%d]", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                       &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  return std::int64_t(std::mktime(&tm)) * 1000 + ms;
}

}  // namespace

namespace iogrid::bench {

namespace {

using runtime::cluster::LocalCluster;
using runtime::cluster::LocalClusterOptions;

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

// Child processes of `pid` (a node's worker processes).
std::size_t children_of(pid_t pid) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == pid && state != "Z") ++n;
  }
  return n;
}

void wait_for_nodes(std::size_t n, std::chrono::seconds limit) {
  auto t0 = Clock::now();
  while (iogrid::nodes().size() < n) {
    if (Clock::now() - t0 > limit) throw std::runtime_error("the nodes did not join the head");
    std::this_thread::sleep_for(20ms);
  }
}

// ---- the nested rows ----
void nested_rows(const Options& o, const std::function<bool(const std::string&)>& wanted, std::vector<Figure>& figs) {
  Figure emb{"nested_depth16_embedded_seconds", 0, "s", false, {}};
  Figure clu{"nested_depth16_cluster_seconds", 0, "s", false, {}};
  Figure peak{"worker_processes_per_node_peak", 0, "processes", false, {}};
  if (wanted("nested_depth16_embedded_seconds")) {
    iogrid::init();
    for (int r = 0; r < o.runs; ++r) {
      auto t0 = Clock::now();
      const long n = iogrid::get(iogrid::task(chaos_tree).remote(16));
      if (n != 65535) throw std::runtime_error("the embedded tree counted " + std::to_string(n) + " tasks");
      emb.runs.push_back(secs(t0, Clock::now()));
      progress(o, "nested depth 16, embedded: " + std::to_string(emb.runs.back()) + " s");
    }
    iogrid::shutdown();
    emb.value = median(emb.runs);
    figs.push_back(emb);
  }
  if (wanted("nested_depth16_cluster_seconds") || wanted("worker_processes_per_node_peak")) {
    LocalCluster c({.iogrid = self_exe(), .state = false, .log_level = "warn", .prefix = "iogrid-bench-nested"});
    c.add_node("nested-1", {"--num-cpus", "2"});
    c.add_node("nested-2", {"--num-cpus", "2"});
    const std::vector<pid_t> nodes{c.node("nested-1").pid(), c.node("nested-2").pid()};
    iogrid::InitOptions io;
    io.address = c.address();
    io.token_file = c.token_file();
    iogrid::init(io);
    wait_for_nodes(2, 15s);
    for (int r = 0; r < o.runs; ++r) {
      std::atomic<bool> done{false};
      std::size_t most = 0;
      std::thread sampler([&] {
        while (!done) {
          for (auto pid : nodes) most = std::max(most, children_of(pid));
          std::this_thread::sleep_for(20ms);
        }
      });
      auto t0 = Clock::now();
      long n = 0;
      try {
        n = iogrid::get(iogrid::task(chaos_tree).remote(16), std::chrono::seconds(300));
      } catch (...) {
        done = true;
        sampler.join();
        throw;
      }
      clu.runs.push_back(secs(t0, Clock::now()));
      done = true;
      sampler.join();
      if (n != 65535) throw std::runtime_error("the cluster tree counted " + std::to_string(n) + " tasks");
      peak.runs.push_back(double(most));
      progress(o, "nested depth 16, head + 2 nodes of 2 CPUs: " + std::to_string(clu.runs.back()) + " s, at most " +
                      std::to_string(most) + " worker process(es) on a node");
    }
    iogrid::shutdown();
    if (c.head().output().find("is dead") != std::string::npos)
      throw std::runtime_error("a node was declared dead during the nested run:\n" + c.logs());
    clu.value = median(clu.runs);
    peak.value = *std::max_element(peak.runs.begin(), peak.runs.end());
    if (wanted("nested_depth16_cluster_seconds")) figs.push_back(clu);
    if (wanted("worker_processes_per_node_peak")) figs.push_back(peak);
  }
}

// ---- the chaos run ----
struct Tally {
  std::mutex m;
  std::uint64_t checked = 0, wrong = 0, lost = 0;
  std::map<std::string, std::uint64_t> reasons;  // why work was lost, shortened
  std::vector<std::string> wrong_examples;
  void ok() {
    std::lock_guard<std::mutex> g(m);
    ++checked;
  }
  void bad(const std::string& what) {
    std::lock_guard<std::mutex> g(m);
    ++checked;
    ++wrong;
    if (wrong_examples.size() < 5) wrong_examples.push_back(what);
  }
  void failed(const std::string& why) {
    std::lock_guard<std::mutex> g(m);
    ++lost;
    auto key = why.substr(0, 160);
    ++reasons[key];
  }
};

// One round of the mixed workload; every result checked.
void chaos_round(std::uint64_t round, Tally& t, std::vector<iogrid::ActorHandle<ChaosSquarer>>& squarers) {
  // Task graphs over large objects: made on one node, summed wherever the sum runs.
  std::vector<std::pair<std::uint64_t, iogrid::ObjectRef<std::uint64_t>>> sums;
  for (std::uint64_t k = 0; k < 4; ++k) {
    const auto seed = round * 16 + k;
    auto blob = iogrid::task(chaos_blob).options({.max_retries = 10}).remote(seed);
    sums.emplace_back(seed, iogrid::task(chaos_sum).options({.max_retries = 10}).remote(blob));
  }
  auto tree = iogrid::task(chaos_tree).options({.max_retries = 10}).remote(8);
  std::vector<std::pair<long, iogrid::ObjectRef<long>>> squares;
  for (std::size_t a = 0; a < squarers.size(); ++a) {
    const long x = long(round % 1000) + long(a);
    squares.emplace_back(x * x, squarers[a].call(&ChaosSquarer::square).remote(x));
  }
  for (auto& [seed, ref] : sums) {
    try {
      const auto got = iogrid::get(ref, std::chrono::seconds(120));
      if (got == chaos_sum(chaos_blob(seed))) t.ok();
      else t.bad("the checksum of object " + std::to_string(seed));
    } catch (const std::exception& e) {
      t.failed(std::string("object graph: ") + e.what());
    }
  }
  try {
    const long n = iogrid::get(tree, std::chrono::seconds(120));
    if (n == 255) t.ok();
    else t.bad("a depth-8 tree counted " + std::to_string(n));
  } catch (const std::exception& e) {
    t.failed(std::string("nested tree: ") + e.what());
  }
  for (auto& [want, ref] : squares) {
    try {
      const long got = iogrid::get(ref, std::chrono::seconds(60));
      if (got == want) t.ok();
      else t.bad("an actor returned " + std::to_string(got) + " for " + std::to_string(want));
    } catch (const std::exception& e) {
      t.failed(std::string("actor call: ") + e.what());
    }
  }
  // A collective group of two actors, made for this round. A member lost with its node fails the allreduce for
  // both (as with any collective library); like a training loop, the round starts again with a new group, up to
  // 3 times, and only then counts as lost.
  if (round % 3 == 0) {
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      const std::string group = "chaos-" + std::to_string(round) + "-" + std::to_string(attempt);
      auto m0 = iogrid::actor<ChaosMember>(group, 0).remote();
      auto m1 = iogrid::actor<ChaosMember>(group, 1).remote();
      auto r0 = m0.call(&ChaosMember::reduce).remote();
      auto r1 = m1.call(&ChaosMember::reduce).remote();
      std::vector<double> got;
      last_error.clear();
      for (auto* r : {&r0, &r1}) {
        try {
          got.push_back(iogrid::get(*r, std::chrono::seconds(90)));
        } catch (const std::exception& e) {
          last_error = e.what();
        }
      }
      if (!last_error.empty()) continue;
      for (double g : got) {
        if (g == 3.0) t.ok();
        else t.bad("an allreduce gave " + std::to_string(g));
      }
      break;
    }
    if (!last_error.empty())
      for (int m = 0; m < 2; ++m) t.failed("collective (3 attempts): " + last_error);
  }
}

struct Fault {
  std::string node;
  std::int64_t from_ms = 0, to_ms = 0;  // the node was down or stopped in [from, to] (wall clock)
};

void chaos_rows(const Options& o, double minutes, const std::function<bool(const std::string&)>& wanted,
                std::vector<Figure>& figs) {
  const int nodes = 4;
  LocalCluster c({.iogrid = self_exe(), .state = true, .log_level = "info", .prefix = "iogrid-bench-chaos"});
  std::vector<std::string> names;
  for (int i = 1; i <= nodes; ++i) {
    names.push_back("chaos-" + std::to_string(i));
    c.add_node(names.back(), {"--num-cpus", "2"});
  }
  iogrid::InitOptions io;
  io.address = c.address();
  io.token_file = c.token_file();
  iogrid::init(io);
  wait_for_nodes(nodes, 20s);
  progress(o, "chaos: head " + c.address() + " (with --state), " + std::to_string(nodes) + " nodes of 2 CPUs, " +
                  std::to_string(minutes) + " minute(s)");

  Tally tally;
  std::vector<iogrid::ActorHandle<ChaosSquarer>> squarers;
  for (int a = 0; a < 3; ++a) squarers.push_back(iogrid::actor<ChaosSquarer>().options({.max_restarts = -1, .max_task_retries = -1}).remote());

  std::mutex fm;
  std::vector<Fault> faults;          // every interval a node was killed or stopped
  std::vector<double> recoveries;     // seconds from a SIGKILL until the node runs a pinned task again
  std::atomic<bool> stop{false};
  const auto end = Clock::now() + std::chrono::milliseconds(static_cast<long>(minutes * 60000));
  std::atomic<int> kills{0}, freezes{0}, restarts{0}, head_kills{0};

  std::thread supervisor([&] {
    std::mt19937_64 rng(12345);
    bool head_killed = false;
    const auto start = Clock::now();
    while (!stop && Clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2000 + rng() % 2000));
      if (stop || Clock::now() >= end) break;
      // The head, once, half-way through.
      if (!head_killed && Clock::now() - start > (end - start) / 2) {
        head_killed = true;
        ++head_kills;
        c.head().kill(SIGKILL);
        std::this_thread::sleep_for(500ms);
        try {
          c.start_head({"--port", std::to_string(c.port())});
        } catch (const std::exception& e) {
          progress(o, std::string("chaos: the head did not come back: ") + e.what());
        }
        continue;
      }
      const auto& victim = names[rng() % names.size()];
      const int action = int(rng() % 3);
      const auto from = wall_ms();
      if (action == 0) {  // SIGKILL, restart after a while, then time the way back
        ++kills;
        const auto t0 = Clock::now();
        c.node(victim).kill(SIGKILL);
        std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 1500));
        c.add_node(victim, {"--num-cpus", "2"});
        bool back = false;
        std::string why;
        while (!stop && Clock::now() - t0 < 60s && !back) {
          try {
            back = iogrid::get(iogrid::task(chaos_where).options({.node = victim, .max_retries = 0}).remote(), 5s) == victim;
          } catch (const std::exception& e) {
            why = e.what();
            std::this_thread::sleep_for(100ms);
          }
        }
        if (!back && stop) progress(o, "chaos: the run ended while " + victim + " was coming back (not timed)");
        else if (!back) progress(o, "chaos: " + victim + " did not come back within 60 s: " + why);
        std::lock_guard<std::mutex> g(fm);
        faults.push_back({victim, from, wall_ms()});
        if (back) recoveries.push_back(secs(t0, Clock::now()));
      } else if (action == 1) {  // SIGSTOP for 1-4 s: longer than the heartbeat timeout sometimes
        ++freezes;
        c.node(victim).kill(SIGSTOP);
        std::this_thread::sleep_for(std::chrono::milliseconds(1000 + rng() % 3000));
        c.node(victim).kill(SIGCONT);
        std::lock_guard<std::mutex> g(fm);
        faults.push_back({victim, from, wall_ms() + 1000});
      } else {  // a restart: SIGTERM, then the daemon again
        ++restarts;
        c.node(victim).kill(SIGTERM);
        c.node(victim).wait(10s);
        c.add_node(victim, {"--num-cpus", "2"});
        std::lock_guard<std::mutex> g(fm);
        faults.push_back({victim, from, wall_ms() + 1000});
      }
    }
  });

  std::uint64_t round = 0;
  while (Clock::now() < end) {
    chaos_round(round++, tally, squarers);
    if (round % 5 == 0)
      progress(o, "chaos: " + std::to_string(round) + " rounds, " + std::to_string(tally.checked) + " results checked, " +
                      std::to_string(tally.wrong) + " wrong, " + std::to_string(tally.lost) + " lost");
  }
  stop = true;
  supervisor.join();
  iogrid::shutdown();

  // False deaths: the head declared a node dead outside every interval in which it was killed or stopped.
  std::uint64_t false_deaths = 0;
  {
    std::istringstream log(c.head_log());  // both heads: before its SIGKILL and after the restart
    for (std::string line; std::getline(log, line);) {
      auto p = line.find("] node ");
      if (p == std::string::npos || line.find(" is dead: ") == std::string::npos) continue;
      const auto name = line.substr(p + 7, line.find(" is dead: ") - p - 7);
      const auto at = log_ms(line);
      if (line.find("endpoint stopped") != std::string::npos) continue;  // the head itself stopping
      bool explained = false;
      std::lock_guard<std::mutex> g(fm);
      for (const auto& f : faults)
        if (f.node == name && at >= f.from_ms - 500 && at <= f.to_ms + 5000) explained = true;
      if (!explained) {
        ++false_deaths;
        progress(o, "chaos: a false death: " + line);
      }
    }
  }
  progress(o, "chaos: " + std::to_string(kills) + " node kills, " + std::to_string(freezes) + " freezes, " +
                  std::to_string(restarts) + " restarts, " + std::to_string(head_kills) + " head kill(s); " +
                  std::to_string(round) + " rounds");
  for (const auto& [why, n] : tally.reasons) progress(o, "chaos: lost " + std::to_string(n) + " x " + why);
  for (const auto& w : tally.wrong_examples) progress(o, "chaos: WRONG " + w);

  auto add = [&](const std::string& name, double v, const std::string& unit, bool higher) {
    if (wanted(name)) figs.push_back(Figure{name, v, unit, higher, {v}});
  };
  add("chaos_results_checked", double(tally.checked), "results", true);
  add("chaos_wrong_results", double(tally.wrong), "results", false);
  add("chaos_lost_results", double(tally.lost), "results", false);
  std::sort(recoveries.begin(), recoveries.end());
  auto q = [&](double p) {
    if (recoveries.empty()) return 0.0;
    return recoveries[std::min(recoveries.size() - 1, static_cast<std::size_t>(p * double(recoveries.size() - 1) + 0.5))];
  };
  add("chaos_recovery_p50_seconds", q(0.5), "s", false);
  add("chaos_recovery_p99_seconds", q(0.99), "s", false);
  add("chaos_false_deaths", double(false_deaths), "nodes", false);
}

}  // namespace

int run_chaos(const Options& o, double minutes) {
  auto wanted = selection(o, "chaos", {
        "nested_depth16_embedded_seconds",
        "nested_depth16_cluster_seconds",
        "worker_processes_per_node_peak",
        "chaos_results_checked",
        "chaos_wrong_results",
        "chaos_lost_results",
        "chaos_recovery_p50_seconds",
        "chaos_recovery_p99_seconds",
        "chaos_false_deaths"});
  std::vector<Figure> figs;
  nested_rows(o, wanted, figs);
  bool any_chaos = false;
  for (const char* n : {"chaos_results_checked", "chaos_wrong_results", "chaos_lost_results", "chaos_recovery_p50_seconds",
                        "chaos_recovery_p99_seconds", "chaos_false_deaths"})
    any_chaos = any_chaos || wanted(n);
  if (any_chaos) chaos_rows(o, minutes, wanted, figs);
  print("chaos", o, figs);
  return 0;
}

}  // namespace iogrid::bench
