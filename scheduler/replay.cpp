#include "scheduler/replay.hpp"

#include <algorithm>
#include <map>
#include <queue>
#include <random>

#include "scheduler/feasibility.hpp"
#include "scheduler/fragmentation.hpp"

namespace iogrid::sched {

namespace {

std::vector<TaskShape> gpu_shapes(const std::vector<TraceTask>& tasks) {
  WorkloadHistogram h;
  for (const auto& t : tasks) h.observe(to_request(t));
  return h.shapes();
}

double fragmented(const ClusterView& view, const std::vector<TaskShape>& shapes) {
  double free = 0, frag = 0;
  for (const auto& n : view.nodes) {
    if (!n.alive) continue;
    for (const auto& g : n.gpus) free += double(g.free);
    frag += node_fragmentation(n, shapes);
  }
  return free > 0 ? frag / free : 0;
}

double allocated_ratio(const ClusterView& view, Milli capacity) {
  Milli free = 0;
  for (const auto& n : view.nodes)
    for (const auto& g : n.gpus) free += g.free;
  return capacity > 0 ? double(capacity - free) / double(capacity) : 0;
}

}  // namespace

double fragmented_share(const ClusterView& view, const std::vector<TraceTask>& tasks) {
  return fragmented(view, gpu_shapes(tasks));
}

ReplayResult replay(const std::vector<TraceNode>& nodes, const std::vector<TraceTask>& tasks, SchedulingPolicy& policy,
                    double inflate, const Clock& now) {
  ReplayOptions o;
  o.inflate = inflate;
  return replay(nodes, tasks, policy, o, now);
}

ReplayResult replay(const std::vector<TraceNode>& nodes, const std::vector<TraceTask>& all_tasks, SchedulingPolicy& policy,
                    const ReplayOptions& options, const Clock& now) {
  ReplayResult res;
  res.policy = std::string(policy.name());
  std::vector<const TraceTask*> tasks;
  for (const auto& t : all_tasks)
    if (!options.gpu_only || t.num_gpu > 0) tasks.push_back(&t);
  if (options.expect_workload) {
    std::vector<ResourceRequest> expected;
    for (const auto* t : tasks) expected.push_back(to_request(*t));
    policy.expect(expected);
  }
  ClusterState state(to_view(nodes));
  const auto& view = state.view();
  Milli capacity = 0;
  for (const auto& n : view.nodes) capacity += Milli(n.gpus.size()) * kOne;
  auto shapes = gpu_shapes(all_tasks);
  const double inflate = options.inflate;
  const bool saturate = inflate > 0;
  const bool shuffled = options.order == ReplayOptions::Order::random;
  std::mt19937_64 rng(options.seed);
  std::vector<std::size_t> order(tasks.size());
  auto reshuffle = [&] {
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    if (shuffled) std::shuffle(order.begin(), order.end(), rng);
  };
  reshuffle();
  using Departure = std::pair<std::int64_t, Allocation>;
  auto later = [](const Departure& a, const Departure& b) { return a.first > b.first; };
  std::priority_queue<Departure, std::vector<Departure>, decltype(later)> departures(later);
  std::vector<double> latencies;
  latencies.reserve(tasks.size());
  double arrived = 0, next_sample = 0.05;
  bool at_100 = false;
  auto sample = [&] {
    res.curve.push_back(ReplayPoint{arrived / double(std::max<Milli>(capacity, 1)), allocated_ratio(view, capacity),
                                    fragmented(view, shapes)});
  };
  std::size_t i = 0;
  for (std::size_t n = 0; !tasks.empty(); ++n) {
    if (!saturate && n >= tasks.size()) break;
    if (saturate && arrived >= inflate * double(capacity)) break;
    if (saturate && n >= tasks.size() * 1000) break;  // a trace without GPU work never saturates
    const auto& t = *tasks[order[i]];
    if (++i == tasks.size()) {
      i = 0;
      reshuffle();
    }
    if (!saturate && !shuffled)
      while (!departures.empty() && departures.top().first <= t.creation_time) {
        state.release(departures.top().second);
        departures.pop();
      }
    auto req = to_request(t);
    auto t0 = now();
    auto alloc = policy.place(state, req);
    latencies.push_back(std::chrono::duration<double, std::milli>(now() - t0).count());
    double g = double(req.gpus) / double(kOne);
    if (alloc) {
      ++res.placed;
      res.gpu_placed += g;
      if (!saturate && !shuffled) departures.emplace(t.deletion_time, *alloc);
    } else {
      ++res.failed;
      res.gpu_failed += g;
    }
    arrived += double(req.gpus);
    while (capacity > 0 && arrived / double(capacity) >= next_sample) {
      sample();
      next_sample += 0.05;
    }
    if (!at_100 && capacity > 0 && arrived >= double(capacity)) {
      at_100 = true;
      res.allocated_at_100 = allocated_ratio(view, capacity);
      res.fragmented_at_100 = fragmented(view, shapes);
    }
  }
  res.final_allocated_gpu_ratio = allocated_ratio(view, capacity);
  res.final_fragmented_share = fragmented(view, shapes);
  if (!latencies.empty()) {
    double total = 0;
    for (double l : latencies) total += l;
    res.decisions_per_s = total > 0 ? double(latencies.size()) / (total / 1000.0) : 0;
    auto at = [&](double q) {
      auto k = static_cast<std::size_t>(q * double(latencies.size() - 1));
      std::nth_element(latencies.begin(), latencies.begin() + static_cast<std::ptrdiff_t>(k), latencies.end());
      return latencies[k];
    };
    res.p50_ms = at(0.5);
    res.p99_ms = at(0.99);
  }
  return res;
}

}  // namespace iogrid::sched
