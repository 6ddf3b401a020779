// `iogrid bench scale`: the scheduler at 10,000 nodes / 80,000 GPUs, alone and inside the head actor.
// Clusters and work come from the seeded trace generator (dense 8-GPU nodes of six models in three regions,
// with prices and reputations); the cluster is warmed to about 80% GPU allocation before decisions are timed.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <deque>
#include <future>
#include <iostream>
#include <map>

#include "bench/report.hpp"
#include "runtime/head_actor.hpp"
#include "runtime/lease_client.hpp"
#include "runtime/messages.hpp"
#include "scheduler/placement_group.hpp"
#include "scheduler/replay.hpp"
#include "scheduler/scheduler.hpp"
#include "scheduler/trace.hpp"

namespace iogrid::bench {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kNodes = 10000;


double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// Runs the trace's tasks (arrivals and departures) through `state` with the pack policy until it is warm.
void warm(sched::ClusterState& state, const std::vector<sched::TraceTask>& tasks, std::size_t count,
          std::deque<sched::Allocation>& live, std::size_t keep) {
  auto policy = sched::make_policy("pack");
  for (std::size_t i = 0; i < count; ++i) {
    auto req = sched::to_request(tasks[i % tasks.size()]);
    if (auto n = policy->select(state, req))
      if (auto a = state.allocate(*n, req)) live.push_back(*a);
    while (live.size() > keep) {
      state.release(live.front());
      live.pop_front();
    }
  }
}

double gpu_allocated(const sched::ClusterState& s) {
  double total = 0, free = 0;
  for (const auto& n : s.nodes())
    for (const auto& g : n.gpus) total += 1000, free += double(g.free);
  return total > 0 ? 1 - free / total : 0;
}

// A counting lease client (the head calls it on its own thread).
struct Counter final : runtime::LeaseClient {
  std::atomic<std::uint64_t> granted{0}, failed{0};
  std::promise<void>* one = nullptr;
  void lease_granted() override {
    ++granted;
    if (one) one->set_value();
  }
  void lease_failed(std::shared_ptr<const core::ErrorInfo>) override {
    ++failed;
    if (one) one->set_value();
  }
};

// Stands in for every node actor: keeps the last `keep` leases running, ending the oldest as new ones start.
caf::behavior sink_node(caf::event_based_actor* self, caf::actor head, std::size_t keep) {
  auto live = std::make_shared<std::deque<sched::Allocation>>();
  return {[=](runtime::start_atom, const std::shared_ptr<worker::WorkSource>&, const sched::Allocation& a) {
    live->push_back(a);
    while (live->size() > keep) {
      self->send(head, runtime::release_atom::value, live->front());
      live->pop_front();
    }
  }};
}

}  // namespace

int run_scale(const Options& o) {
  auto wanted = selection(o, "scale", {
        "placement_decisions_per_s_10k_nodes",
        "p99_decision_latency_ms_10k_nodes",
        "head_actor_decisions_per_s_10k_nodes",
        "head_actor_p99_decision_latency_ms_10k_nodes",
        "placement_group_create_per_s",
        "placement_group_removal_per_s",
        "scheduler_bytes_per_queued_task",
        "replay_1m_tasks_seconds",
        "fgd_vs_best_fit_unallocated_ratio",
        "fgd_vs_best_fit_unallocated_ratio_trace_order",
        "fgd_vs_best_fit_unallocated_ratio_default_mix",
        "fgd_vs_best_fit_unallocated_ratio_constrained_mix",
        "pack_vs_best_fit_allocated_ratio",
        "fgd_cut_allocated_ratio"});
  std::map<std::string, Figure> figs;
  auto add = [&](const std::string& name, const std::string& unit, bool higher, double v) {
    auto& f = figs[name];
    f.name = name;
    f.unit = unit;
    f.higher_is_better = higher;
    f.runs.push_back(v);
    progress(o, name + ": " + std::to_string(v) + " " + unit);
  };
  const int runs = o.runs;

  progress(o, "generating a 10,000-node cluster (80,000 GPUs) and 300,000 tasks");
  auto trace = sched::generate_trace(kNodes, 300000, 7, sched::TraceMix::standard, true);
  std::size_t gpus = 0;
  for (const auto& n : trace.nodes) gpus += static_cast<std::size_t>(n.gpus);
  progress(o, std::to_string(trace.nodes.size()) + " nodes, " + std::to_string(gpus) + " GPUs");

  // 1. The library alone: the replay of 300,000 tasks (arrivals and departures) times every decision.
  if (wanted("placement_decisions_per_s_10k_nodes") || wanted("p99_decision_latency_ms_10k_nodes")) {
    for (const char* policy : {"pack", "market", "fgd"}) {
      std::string suffix = std::string(policy) == "pack" ? "" : std::string("_") + policy;
      for (int r = 0; r < (suffix.empty() ? runs : 1); ++r) {
        auto p = sched::make_policy(policy);
        auto res = sched::replay(trace.nodes, trace.tasks, *p, 0, [] { return Clock::now(); });
        add("placement_decisions_per_s_10k_nodes" + suffix, "/s", true, res.decisions_per_s);
        add("p99_decision_latency_ms_10k_nodes" + suffix, "ms", false, res.p99_ms);
        progress(o, std::string(policy) + ": final GPU allocation " + std::to_string(res.final_allocated_gpu_ratio));
      }
    }
  }

  // 2. With the head actor around it: lease requests as messages, grants through the scheduler's queue; nodes
  // are one sink actor that keeps 65,000 leases running (~70% of the GPUs; ending the oldest as new ones start).
  if (wanted("head_actor_decisions_per_s_10k_nodes") || wanted("head_actor_p99_decision_latency_ms_10k_nodes")) {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 2);
    // Workers poll a while before sleeping, as a head under steady load would (saves a futex per message).
    cfg.set("work-stealing.aggressive-poll-attempts", 1000);
    cfg.set("work-stealing.moderate-poll-attempts", 2000);
    caf::actor_system sys{cfg};
    for (int r = 0; r < runs; ++r) {
      auto head = runtime::spawn_head(sys, sched::to_view(trace.nodes), "pack");
      const std::size_t keep = 65000;  // about 70% of 80,000 GPUs at ~0.86 GPU per lease
      auto sink = sys.spawn(sink_node, head, keep);
      anon_send(head, runtime::nodes_atom::value, std::vector<caf::actor>(trace.nodes.size(), sink));
      auto counter = std::make_shared<Counter>();
      auto send_n = [&](std::size_t from, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i)
          anon_send(head, runtime::lease_atom::value,
                    runtime::LeaseRequest{sched::to_request(trace.tasks[(from + i) % trace.tasks.size()]), counter, nullptr});
      };
      auto done = [&] { return counter->granted + counter->failed; };
      auto wait_for = [&](std::uint64_t n) {
        while (done() < n) std::this_thread::sleep_for(std::chrono::microseconds(200));
      };
      // Drivers keep a window of requests in flight (as owners do), so leases end while new ones arrive.
      auto windowed = [&](std::size_t from, std::size_t n) {
        const std::uint64_t base = done();
        for (std::size_t sent = 0; sent < n;) {
          if (sent - (done() - base) < 4000) {
            send_n(from + sent, 1000);
            sent += 1000;
          } else {
            std::this_thread::yield();
          }
        }
      };
      windowed(0, 100000);  // warm up to the steady state
      wait_for(100000 - 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      auto before = done();
      const std::size_t n = 200000;
      auto t0 = Clock::now();
      windowed(100000, n);
      wait_for(before + n - 1000);  // a few may still wait for capacity
      double dt = secs(t0, Clock::now());
      add("head_actor_decisions_per_s_10k_nodes", "/s", true, double(counter->granted + counter->failed - before) / dt);
      // Latency: one request at a time, from sending it to the grant's callback.
      std::vector<double> lat;
      for (std::size_t i = 0; i < 5000; ++i) {
        std::promise<void> p;
        auto f = p.get_future();
        auto c = std::make_shared<Counter>();
        c->one = &p;
        auto s0 = Clock::now();
        anon_send(head, runtime::lease_atom::value,
                  runtime::LeaseRequest{sched::to_request(trace.tasks[(300000 + i * 7) % trace.tasks.size()]), c, nullptr});
        if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) break;
        lat.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s0).count());
      }
      add("head_actor_p99_decision_latency_ms_10k_nodes", "ms", false, quantile(lat, 0.99));
      anon_send_exit(sink, caf::exit_reason::user_shutdown);
      anon_send_exit(head, caf::exit_reason::user_shutdown);
    }
  }

  // 3. Gangs: create and remove 4-bundle gangs (1 GPU + 4 CPUs each, pack) on the warm cluster.
  if (wanted("placement_group_create_per_s") || wanted("placement_group_removal_per_s")) {
    for (int r = 0; r < runs; ++r) {
      sched::ClusterState state(sched::to_view(trace.nodes));
      std::deque<sched::Allocation> live;
      warm(state, trace.tasks, 150000, live, 60000);
      progress(o, "warm cluster: " + std::to_string(gpu_allocated(state)) + " of GPUs allocated");
      sched::GangRequest g;
      sched::ResourceRequest b;
      b.cpus = 4000;
      b.gpus = 1000;
      g.bundles.assign(4, b);
      const sched::GangStrategy strategies[] = {sched::GangStrategy::pack, sched::GangStrategy::spread};
      std::vector<sched::GangPlacement> placed;
      const int n = 5000;
      placed.reserve(n);
      auto t0 = Clock::now();
      for (int i = 0; i < n; ++i) {
        g.strategy = strategies[i % 2];
        if (auto p = sched::place_gang(state, g)) placed.push_back(std::move(*p));
      }
      auto t1 = Clock::now();
      for (const auto& p : placed) sched::release_gang(state, p);
      auto t2 = Clock::now();
      add("placement_group_create_per_s", "/s", true, double(n) / secs(t0, t1));
      add("placement_group_removal_per_s", "/s", true, double(placed.size()) / secs(t1, t2));
    }
  }

  // 4. Memory per queued task: one million requests (the trace's shapes, four jobs) queued in the scheduler.
  if (wanted("scheduler_bytes_per_queued_task")) {
    for (int r = 0; r < std::min(runs, 3); ++r) {
      sched::Scheduler s(sched::make_policy("pack"));
      for (const auto& n : sched::to_view(trace.nodes).nodes) s.cluster().add(n);
      s.node_changed();
      const char* jobs[] = {"a", "b", "c", "d"};
      auto before = mallinfo2().uordblks;
      const std::size_t n = 1000000;
      for (std::size_t i = 0; i < n; ++i) s.submit(jobs[i % 4], sched::to_request(trace.tasks[i % trace.tasks.size()]));
      auto after = mallinfo2().uordblks;
      add("scheduler_bytes_per_queued_task", "B", false, double(after - before) / double(n));
    }
  }

  // 5. Replay of a 10,000-node, 1,000,000-task synthetic trace (pack), wall time including setup.
  if (wanted("replay_1m_tasks_seconds")) {
    auto big = sched::generate_trace(kNodes, 1000000, 11, sched::TraceMix::standard, true);
    for (int r = 0; r < std::min(runs, 3); ++r) {
      auto p = sched::make_policy("pack");
      auto t0 = Clock::now();
      auto res = sched::replay(big.nodes, big.tasks, *p, 0, [] { return Clock::now(); });
      add("replay_1m_tasks_seconds", "s", false, secs(t0, Clock::now()));
      progress(o, "placed " + std::to_string(res.placed) + ", failed " + std::to_string(res.failed));
    }
  }

  // 6. Placement quality at saturation, the FGD paper's way: a production-shaped cluster (1,213 nodes, the
  // trace generator's default machines) and 8,000 tasks; tasks never leave; arrivals stop at 1.3x the GPUs.
  // Ratios of the mean over seeds 1-3, every policy on the same traces.
  const bool quality = wanted("fgd_vs_best_fit_unallocated_ratio") || wanted("fgd_vs_best_fit_unallocated_ratio_trace_order") ||
                       wanted("pack_vs_best_fit_allocated_ratio") || wanted("fgd_vs_best_fit_unallocated_ratio_default_mix") ||
                       wanted("fgd_vs_best_fit_unallocated_ratio_constrained_mix");
  if (quality) {
    auto clock = [] { return Clock::now(); };
    struct Protocol {
      const char* name;
      sched::ReplayOptions::Order order;
      bool gpu_only;
    };
    const Protocol protocols[] = {{"random order, GPU tasks", sched::ReplayOptions::Order::random, true},
                                  {"trace order, CPU-only tasks too", sched::ReplayOptions::Order::trace, false}};
    double pack_ratio = 1e9;
    for (auto mix : {sched::TraceMix::sharing, sched::TraceMix::standard, sched::TraceMix::constrained}) {
      const char* mix_name = mix == sched::TraceMix::sharing ? "sharing" : mix == sched::TraceMix::standard ? "default" : "constrained";
      for (const auto& pr : protocols) {
        double unalloc_bf = 0, unalloc_fgd = 0, alloc_bf = 0, alloc_pack = 0;
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
          auto t = sched::generate_trace(1213, 8000, seed, mix);
          sched::ReplayOptions ro;
          ro.order = pr.order;
          ro.seed = seed;
          ro.gpu_only = pr.gpu_only;
          ro.inflate = 1.3;
          auto bf = sched::make_policy("exhaustive-best-fit");
          auto pack = sched::make_policy("pack");
          auto fgd = sched::make_policy("fgd");
          auto a = sched::replay(t.nodes, t.tasks, *bf, ro, clock);
          auto p = sched::replay(t.nodes, t.tasks, *pack, ro, clock);
          auto f = sched::replay(t.nodes, t.tasks, *fgd, ro, clock);
          unalloc_bf += a.unallocated() / 3;
          unalloc_fgd += f.unallocated() / 3;
          alloc_bf += a.final_allocated_gpu_ratio / 3;
          alloc_pack += p.final_allocated_gpu_ratio / 3;
        }
        progress(o, std::string(mix_name) + " mix, " + pr.name + ": unallocated GPU share best-fit " +
                        std::to_string(unalloc_bf) + ", fgd " + std::to_string(unalloc_fgd) + "; allocated pack " +
                        std::to_string(alloc_pack) + " vs best-fit " + std::to_string(alloc_bf));
        pack_ratio = std::min(pack_ratio, alloc_pack / alloc_bf);
        const double ratio = unalloc_bf > 0 ? unalloc_fgd / unalloc_bf : 1.0;
        const bool random = pr.order == sched::ReplayOptions::Order::random;
        if (mix == sched::TraceMix::sharing)
          add(random ? "fgd_vs_best_fit_unallocated_ratio" : "fgd_vs_best_fit_unallocated_ratio_trace_order", "x", false, ratio);
        else if (random)
          add(std::string("fgd_vs_best_fit_unallocated_ratio_") + mix_name + "_mix", "x", false, ratio);
      }
    }
    add("pack_vs_best_fit_allocated_ratio", "x", true, pack_ratio);
  }

  // 7. What fgd's search cut costs: fgd against fgd-exhaustive at saturation on 2,000 dense nodes (over a
  // hundred nodes per class, so the cut binds), sharing mix, random order, GPU tasks.
  if (wanted("fgd_cut_allocated_ratio")) {
    auto t = sched::generate_trace(2000, 30000, 5, sched::TraceMix::sharing, true);
    sched::ReplayOptions ro;
    ro.order = sched::ReplayOptions::Order::random;
    ro.gpu_only = true;
    ro.inflate = 1.3;
    auto clock = [] { return Clock::now(); };
    auto cut = sched::make_policy("fgd");
    auto all = sched::make_policy("fgd-exhaustive");
    auto a = sched::replay(t.nodes, t.tasks, *cut, ro, clock);
    auto b = sched::replay(t.nodes, t.tasks, *all, ro, clock);
    progress(o, "fgd allocated " + std::to_string(a.final_allocated_gpu_ratio) + " at " + std::to_string(a.decisions_per_s) +
                    "/s, fgd-exhaustive " + std::to_string(b.final_allocated_gpu_ratio) + " at " +
                    std::to_string(b.decisions_per_s) + "/s");
    add("fgd_cut_allocated_ratio", "x", true, a.final_allocated_gpu_ratio / b.final_allocated_gpu_ratio);
  }

  std::vector<Figure> out;
  for (auto& [name, f] : figs) {
    f.value = median(f.runs);
    out.push_back(std::move(f));
  }
  print("scale", o, out);
  return 0;
}

}  // namespace iogrid::bench
