#include "scheduler/fragmentation.hpp"

#include <algorithm>

namespace iogrid::sched {

namespace {

bool accepts(const TaskShape& s, const Gpu& g) {
  return s.models.empty() || std::find(s.models.begin(), s.models.end(), g.model) != s.models.end();
}

// The rules of the header over a node's free CPUs and the free fraction of each of its GPUs.
Milli unusable(const Node& n, Milli cpus, const std::vector<Milli>& free, const TaskShape& s) {
  Milli total = 0, whole = 0, stranded = 0;
  bool any = false;
  for (std::size_t d = 0; d < free.size(); ++d) {
    total += free[d];
    const bool ok = accepts(s, n.gpus[d]);
    any = any || ok;
    if (ok && free[d] == kOne) ++whole;
    if (!ok || free[d] < s.gpus) stranded += free[d];
  }
  if (total == 0) return 0;
  if (cpus < s.cpus || !any) return total;
  if (s.gpus < kOne) return stranded;
  if (whole * kOne < s.gpus) return total;
  return total - whole * kOne;
}

double fragmentation(const Node& n, Milli cpus, const std::vector<Milli>& free, const std::vector<TaskShape>& workload) {
  double f = 0;
  for (const auto& s : workload) f += s.weight * double(unusable(n, cpus, free, s));
  return f;
}

std::vector<Milli> free_of(const Node& n) {
  std::vector<Milli> out;
  out.reserve(n.gpus.size());
  for (const auto& g : n.gpus) out.push_back(g.free);
  return out;
}

}  // namespace

Milli unusable_gpu(const Node& n, const TaskShape& s) { return unusable(n, n.available.cpus, free_of(n), s); }

double node_fragmentation(const Node& n, const std::vector<TaskShape>& workload) {
  return fragmentation(n, n.available.cpus, free_of(n), workload);
}

double fragmentation_growth(const Node& n, const Allocation& a, const std::vector<TaskShape>& workload) {
  auto free = free_of(n);
  double before = fragmentation(n, n.available.cpus, free, workload);
  for (const auto& [i, f] : a.gpus) free[i] -= f;
  return fragmentation(n, n.available.cpus - a.cpus, free, workload) - before;
}

void WorkloadHistogram::observe(const ResourceRequest& r) {
  if (r.gpus <= 0) return;
  auto models = r.gpu_models;
  std::sort(models.begin(), models.end());
  Key key{r.gpus, r.cpus, std::move(models)};
  auto it = counts_.find(key);
  if (it == counts_.end() && counts_.size() >= kTracked) {
    auto rarest = std::min_element(counts_.begin(), counts_.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    total_ -= rarest->second;
    counts_.erase(rarest);
  }
  ++counts_[key];
  ++total_;
}

std::vector<TaskShape> WorkloadHistogram::shapes(double coverage) const {
  std::vector<std::pair<std::uint64_t, const Key*>> by_count;
  for (const auto& [k, c] : counts_) by_count.emplace_back(c, &k);
  std::stable_sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<TaskShape> out;
  double kept = 0;
  for (const auto& [c, k] : by_count) {
    if (out.size() >= kTypical || (!out.empty() && kept >= coverage * double(total_))) break;
    out.push_back(TaskShape{std::get<0>(*k), std::get<1>(*k), std::get<2>(*k), double(c)});
    kept += double(c);
  }
  for (auto& s : out) s.weight /= kept;
  return out;
}

}  // namespace iogrid::sched
