#include "scheduler/fragmentation.hpp"

#include <algorithm>

namespace iogrid::sched {

namespace {

// The rules of the header over a node's free CPUs and the free fraction of each of its GPUs.
Milli unusable(Milli cpus, const std::vector<Milli>& free_per_gpu, const TaskShape& s) {
  Milli free = 0, whole = 0;
  for (auto f : free_per_gpu) {
    free += f;
    if (f == kOne) ++whole;
  }
  if (free == 0) return 0;
  if (cpus < s.cpus) return free;
  if (s.gpus < kOne) {
    Milli small = 0;
    for (auto f : free_per_gpu)
      if (f < s.gpus) small += f;
    return small;
  }
  if (whole * kOne < s.gpus) return free;
  return free - whole * kOne;
}

double fragmentation(Milli cpus, const std::vector<Milli>& free_per_gpu, const std::vector<TaskShape>& workload) {
  double f = 0;
  for (const auto& s : workload) f += s.weight * double(unusable(cpus, free_per_gpu, s));
  return f;
}

std::vector<Milli> free_of(const Node& n) {
  std::vector<Milli> out;
  out.reserve(n.gpus.size());
  for (const auto& g : n.gpus) out.push_back(g.free);
  return out;
}

}  // namespace

Milli unusable_gpu(const Node& n, const TaskShape& s) { return unusable(n.available.cpus, free_of(n), s); }

double node_fragmentation(const Node& n, const std::vector<TaskShape>& workload) {
  return fragmentation(n.available.cpus, free_of(n), workload);
}

double fragmentation_growth(const Node& n, const Allocation& a, const std::vector<TaskShape>& workload) {
  auto free = free_of(n);
  double before = fragmentation(n.available.cpus, free, workload);
  for (const auto& [i, f] : a.gpus) free[i] -= f;
  return fragmentation(n.available.cpus - a.cpus, free, workload) - before;
}

void WorkloadHistogram::observe(const ResourceRequest& r) {
  if (r.gpus <= 0) return;
  ++counts_[{r.gpus, r.cpus}];
  ++total_;
  if (counts_.size() > 64) {  // keep the most frequent shapes
    auto least = std::min_element(counts_.begin(), counts_.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    total_ -= least->second;
    counts_.erase(least);
  }
}

std::vector<TaskShape> WorkloadHistogram::shapes() const {
  std::vector<TaskShape> out;
  for (const auto& [k, c] : counts_) out.push_back(TaskShape{k.first, k.second, double(c) / double(total_)});
  return out;
}

}  // namespace iogrid::sched
