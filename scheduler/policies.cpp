#include <stdexcept>
#include <vector>

#include "scheduler/feasibility.hpp"
#include "scheduler/dot_product_policy.hpp"
#include "scheduler/fgd_policy.hpp"
#include "scheduler/first_fit_policy.hpp"
#include "scheduler/pack_policy.hpp"
#include "scheduler/random_policy.hpp"
#include "scheduler/spread_policy.hpp"

namespace iogrid::sched {

namespace {
// Utilisation of `node` if `req` were placed on it.
double utilization_after(const Node& node, const ResourceRequest& req) {
  Node copy = node;
  (void)allocate(copy, req);
  return utilization(copy);
}
}  // namespace

std::optional<std::uint32_t> PackPolicy::select(const ClusterView& view, const ResourceRequest& req) {
  std::optional<std::uint32_t> best;
  double best_u = -1;
  for (const auto& n : view.nodes) {
    if (!fits(n, req, Capacity::available)) continue;
    double u = utilization_after(n, req);
    if (u > best_u + 1e-12) {
      best_u = u;
      best = n.index;
    }
  }
  return best;
}

std::optional<std::uint32_t> SpreadPolicy::select(const ClusterView& view, const ResourceRequest& req) {
  const auto n = static_cast<std::uint32_t>(view.nodes.size());
  std::optional<std::uint32_t> best;
  double best_u = 2;
  for (std::uint32_t k = 0; k < n; ++k) {
    const auto& node = view.nodes[(cursor_ + k) % n];
    if (!fits(node, req, Capacity::available)) continue;
    double u = utilization(node);
    if (u < best_u - 1e-12) {
      best_u = u;
      best = node.index;
    }
  }
  if (best) cursor_ = (*best + 1) % n;
  return best;
}

std::optional<std::uint32_t> RandomPolicy::select(const ClusterView& view, const ResourceRequest& req) {
  std::vector<std::uint32_t> ok;
  for (const auto& n : view.nodes)
    if (fits(n, req, Capacity::available)) ok.push_back(n.index);
  if (ok.empty()) return std::nullopt;
  return ok[rng_() % ok.size()];
}

std::optional<std::uint32_t> FirstFitPolicy::select(const ClusterView& view, const ResourceRequest& req) {
  for (const auto& n : view.nodes)
    if (fits(n, req, Capacity::available)) return n.index;
  return std::nullopt;
}

std::optional<std::uint32_t> FgdPolicy::select(const ClusterView& view, const ResourceRequest& req) {
  workload_.observe(req);
  auto shapes = workload_.shapes();
  std::optional<std::uint32_t> best;
  double best_delta = 0;
  for (const auto& n : view.nodes) {
    if (!fits(n, req, Capacity::available)) continue;
    Node after = n;
    if (!allocate(after, req)) continue;
    double delta = node_fragmentation(after, shapes) - node_fragmentation(n, shapes);
    if (!best || delta < best_delta - 1e-9) {
      best = n.index;
      best_delta = delta;
    }
  }
  return best;
}

std::optional<std::uint32_t> DotProductPolicy::select(const ClusterView& view, const ResourceRequest& req) {
  std::optional<std::uint32_t> best;
  double best_score = -1;
  for (const auto& n : view.nodes) {
    if (!fits(n, req, Capacity::available)) continue;
    auto norm = [](Milli v, Milli total) { return total > 0 ? double(v) / double(total) : 0.0; };
    Milli gpu_free = 0;
    for (const auto& g : n.gpus) gpu_free += g.free;
    Milli gpu_total = Milli(n.gpus.size()) * kOne;
    double score = norm(req.cpus, n.total.cpus) * norm(n.available.cpus, n.total.cpus) +
                   norm(req.memory_mib, n.total.memory_mib) * norm(n.available.memory_mib, n.total.memory_mib) +
                   norm(req.gpus, gpu_total) * norm(gpu_free, gpu_total);
    if (score > best_score + 1e-12) {
      best_score = score;
      best = n.index;
    }
  }
  return best;
}

std::unique_ptr<SchedulingPolicy> make_policy(const std::string& name, std::uint64_t seed) {
  if (name == "pack") return std::make_unique<PackPolicy>();
  if (name == "spread") return std::make_unique<SpreadPolicy>();
  if (name == "random") return std::make_unique<RandomPolicy>(seed);
  if (name == "first-fit") return std::make_unique<FirstFitPolicy>();
  if (name == "dot-product") return std::make_unique<DotProductPolicy>();
  if (name == "fgd") return std::make_unique<FgdPolicy>();
  throw std::invalid_argument("unknown scheduling policy '" + name + "' (choose pack, spread, random, first-fit, dot-product or fgd)");
}

}  // namespace iogrid::sched
