#include <stdexcept>
#include <vector>

#include "scheduler/feasibility.hpp"
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

std::unique_ptr<SchedulingPolicy> make_policy(const std::string& name, std::uint64_t seed) {
  if (name == "pack") return std::make_unique<PackPolicy>();
  if (name == "spread") return std::make_unique<SpreadPolicy>();
  if (name == "random") return std::make_unique<RandomPolicy>(seed);
  if (name == "first-fit") return std::make_unique<FirstFitPolicy>();
  throw std::invalid_argument("unknown scheduling policy '" + name + "' (choose pack, spread, random or first-fit)");
}

}  // namespace iogrid::sched
