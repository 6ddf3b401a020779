#include "scheduler/fragmentation.hpp"

#include <algorithm>

namespace iogrid::sched {

Milli unusable_gpu(const Node& n, const TaskShape& s) {
  Milli free = 0, whole = 0;
  for (const auto& g : n.gpus) {
    free += g.free;
    if (g.free == kOne) ++whole;
  }
  if (free == 0) return 0;
  if (n.available.cpus < s.cpus) return free;
  if (s.gpus < kOne) {
    Milli small = 0;
    for (const auto& g : n.gpus)
      if (g.free < s.gpus) small += g.free;
    return small;
  }
  if (whole * kOne < s.gpus) return free;
  return free - whole * kOne;
}

double node_fragmentation(const Node& n, const std::vector<TaskShape>& workload) {
  double f = 0;
  for (const auto& s : workload) f += s.weight * double(unusable_gpu(n, s));
  return f;
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
