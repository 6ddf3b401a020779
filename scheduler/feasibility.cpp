#include "scheduler/feasibility.hpp"

#include "scheduler/pricing.hpp"

#include <algorithm>
#include <limits>
#include <sstream>

namespace iogrid::sched {

bool gpu_matches(const Gpu& gpu, const ResourceRequest& req) {
  if (!req.gpu_models.empty() &&
      std::find(req.gpu_models.begin(), req.gpu_models.end(), gpu.model) == req.gpu_models.end())
    return false;
  if (gpu.memory_mib < req.min_gpu_memory_mib) return false;
  if (gpu.compute_capability + 1e-9 < req.min_compute_capability) return false;
  if (!gpu.verified && !req.allow_unverified) return false;
  if (req.min_gpu_tflops > 0 && gpu.tflops + 1e-9 < req.min_gpu_tflops) return false;
  return true;
}

namespace {

const NodeResources& pick(const Node& n, Capacity which) { return which == Capacity::total ? n.total : n.available; }

bool gpus_fit(const Node& node, const ResourceRequest& req, Capacity which) {
  if (req.gpus <= 0) return true;
  if (req.gpus < kOne) {
    for (const auto& g : node.gpus)
      if (gpu_matches(g, req) && (which == Capacity::total ? kOne : g.free) >= req.gpus) return true;
    return false;
  }
  Milli whole = 0;
  for (const auto& g : node.gpus)
    if (gpu_matches(g, req) && (which == Capacity::total || g.free == kOne)) whole += kOne;
  return whole >= req.gpus;
}

bool labels_match(const Node& node, const ResourceRequest& req) {
  for (const auto& [k, v] : req.labels) {
    auto it = node.labels.find(k);
    if (it == node.labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

double pay_price(const Node& node, const ResourceRequest& req) {
  return node.posted_price > 0 ? node.posted_price * tier_rule(req.tier).multiplier : node.price_per_gpu_hour;
}

bool market_ok(const Node& node, const ResourceRequest& req, Capacity which) {
  for (const auto& avoid : req.avoid_nodes)
    if (avoid == node.name) return false;
  if (node.reputation + 1e-12 < req.min_reputation) return false;
  if (req.gpus > 0 && which == Capacity::total)  // ever: the posted price may fall to the node's ask
    return req.max_price <= 0 || node.price_per_gpu_hour <= req.max_price + 1e-12;
  if (req.gpus > 0) {
    const double pay = pay_price(node, req);
    if (node.price_per_gpu_hour > pay + 1e-12) return false;  // below the provider's reserve
    if (req.max_price > 0 && pay > req.max_price + 1e-12) return false;
  }
  return true;
}

bool fits(const Node& node, const ResourceRequest& req, Capacity which) {
  if (!node.alive) return false;
  if (!req.node.empty() && req.node != node.name) return false;
  if (!market_ok(node, req, which)) return false;
  return fits_resources(node, req, which);
}

bool fits_resources(const Node& node, const ResourceRequest& req, Capacity which) {
  const auto& r = pick(node, which);
  if (r.cpus < req.cpus || r.memory_mib < req.memory_mib) return false;
  for (const auto& [k, v] : req.custom) {
    auto it = r.custom.find(k);
    if (v > 0 && (it == r.custom.end() || it->second < v)) return false;
  }
  return labels_match(node, req) && gpus_fit(node, req, which);
}

std::optional<Allocation> plan(const Node& node, const ResourceRequest& req, std::optional<std::uint32_t> device) {
  if (!fits(node, req, Capacity::available)) return std::nullopt;
  Allocation a;
  a.node = node.index;
  a.cpus = req.cpus;
  a.memory_mib = req.memory_mib;
  a.custom = req.custom;
  if (req.gpus > 0 && req.gpus < kOne) {
    std::optional<std::uint32_t> best;
    const bool given = device && *device < node.gpus.size() && gpu_matches(node.gpus[*device], req) &&
                       node.gpus[*device].free >= req.gpus;
    if (given) best = device;
    for (std::uint32_t i = 0; i < node.gpus.size() && !given; ++i) {
      const auto& g = node.gpus[i];
      if (!gpu_matches(g, req) || g.free < req.gpus) continue;
      if (!best || g.free < node.gpus[*best].free) best = i;
    }
    a.gpus.emplace_back(*best, req.gpus);
  } else if (req.gpus >= kOne) {
    Milli need = req.gpus;
    for (std::uint32_t i = 0; i < node.gpus.size() && need > 0; ++i) {
      if (gpu_matches(node.gpus[i], req) && node.gpus[i].free == kOne) {
        a.gpus.emplace_back(i, kOne);
        need -= kOne;
      }
    }
  }
  return a;
}

std::optional<Allocation> allocate(Node& node, const ResourceRequest& req, std::optional<std::uint32_t> device) {
  auto a = plan(node, req, device);
  if (!a) return a;
  node.available.cpus -= a->cpus;
  node.available.memory_mib -= a->memory_mib;
  for (const auto& [k, v] : a->custom) node.available.custom[k] -= v;
  for (const auto& [i, f] : a->gpus) node.gpus[i].free -= f;
  return a;
}

void release(Node& node, const Allocation& a) {
  node.available.cpus += a.cpus;
  node.available.memory_mib += a.memory_mib;
  for (const auto& [k, v] : a.custom) node.available.custom[k] += v;
  for (const auto& [i, f] : a.gpus)
    if (i < node.gpus.size()) node.gpus[i].free += f;
}

bool reserve(Node& node, const Allocation& a) {
  if (a.cpus > node.available.cpus || a.memory_mib > node.available.memory_mib) return false;
  for (const auto& [k, v] : a.custom) {
    auto it = node.available.custom.find(k);
    if (it == node.available.custom.end() || it->second < v) return false;
  }
  for (const auto& [i, f] : a.gpus)
    if (i >= node.gpus.size() || node.gpus[i].free < f) return false;
  node.available.cpus -= a.cpus;
  node.available.memory_mib -= a.memory_mib;
  for (const auto& [k, v] : a.custom) node.available.custom[k] -= v;
  for (const auto& [i, f] : a.gpus) node.gpus[i].free -= f;
  return true;
}

namespace {
double used_fraction(Milli avail, Milli total) { return total > 0 ? 1.0 - double(avail) / double(total) : 0.0; }
}  // namespace

double utilization(const Node& node) {
  ResourceRequest nothing;
  nothing.cpus = 0;
  return utilization_after(node, nothing);
}

double utilization_after(const Node& node, const ResourceRequest& req) {
  double u = std::max(used_fraction(node.available.cpus - req.cpus, node.total.cpus),
                      used_fraction(node.available.memory_mib - req.memory_mib, node.total.memory_mib));
  if (!node.gpus.empty()) {
    Milli free = -req.gpus;
    for (const auto& g : node.gpus) free += g.free;
    u = std::max(u, used_fraction(free, Milli(node.gpus.size()) * kOne));
  }
  return u;
}

namespace {
std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
}  // namespace

std::string first_unmet(const Node& node, const ResourceRequest& req) {
  std::ostringstream os;
  if (!node.alive) return "it is dead";
  if (!req.node.empty() && req.node != node.name) return "the request is pinned to node '" + req.node + "'";
  for (const auto& avoid : req.avoid_nodes)
    if (avoid == node.name) return "the request avoids it (a spot check runs on another provider)";
  if (node.reputation + 1e-12 < req.min_reputation)
    return "its reputation " + fmt(node.reputation) + " is below the request's minimum " + fmt(req.min_reputation);
  if (req.max_price > 0 && req.gpus > 0 && node.price_per_gpu_hour > req.max_price + 1e-12)
    return "its price " + fmt(node.price_per_gpu_hour) + "/GPU-h is above the request's ceiling " + fmt(req.max_price);
  if (node.total.cpus < req.cpus)
    return "it has " + std::to_string(from_milli(node.total.cpus)).substr(0, 6) + " CPUs, the request needs " +
           std::to_string(from_milli(req.cpus)).substr(0, 6);
  if (node.total.memory_mib < req.memory_mib)
    return "it has " + std::to_string(node.total.memory_mib / 1024) + " GiB memory, the request needs " +
           std::to_string(req.memory_mib / 1024);
  for (const auto& [k, v] : req.custom) {
    auto it = node.total.custom.find(k);
    if (v > 0 && (it == node.total.custom.end() || it->second < v)) return "it lacks custom resource '" + k + "'";
  }
  for (const auto& [k, v] : req.labels) {
    auto it = node.labels.find(k);
    if (it == node.labels.end()) return "it has no label '" + k + "'";
    if (it->second != v) return "its label " + k + "=" + it->second + ", the request wants " + v;
  }
  if (req.gpus > 0) {
    if (node.gpus.empty()) return "it has no GPUs";
    std::size_t matching = 0;
    for (const auto& g : node.gpus) matching += gpu_matches(g, req) ? 1 : 0;
    if (matching == 0) {
      const auto& g = node.gpus.front();
      if (!req.gpu_models.empty() &&
          std::find(req.gpu_models.begin(), req.gpu_models.end(), g.model) == req.gpu_models.end())
        return "its GPUs are " + g.model + ", not an accepted model";
      if (g.memory_mib < req.min_gpu_memory_mib)
        return "its GPUs have " + std::to_string(g.memory_mib / 1024) + " GiB, the request needs " +
               std::to_string(req.min_gpu_memory_mib / 1024) + " GiB";
      if (g.compute_capability + 1e-9 < req.min_compute_capability)
        return "its GPUs' compute capability is below the request's minimum";
      if (!g.verified && !req.allow_unverified) return "its GPUs are unverified (the request does not allow unverified GPUs)";
      return "its GPUs' verified throughput " + fmt(g.tflops) + " TFLOPS is below the request's minimum " +
             fmt(req.min_gpu_tflops);
    }
    if (req.gpus >= kOne && Milli(matching) * kOne < req.gpus)
      return "it has " + std::to_string(matching) + " matching GPUs, the request needs " +
             std::to_string(req.gpus / kOne);
  }
  return {};
}

std::string explain_infeasible(const ClusterView& view, const ResourceRequest& req) {
  std::ostringstream os;
  os << "no node can ever satisfy " << req.describe();
  const Node* best = nullptr;
  int best_score = std::numeric_limits<int>::max();
  for (const auto& n : view.nodes) {
    // Score: how many hard dimensions fail (fewer is closer).
    int score = 0;
    if (!n.alive) score += 100;
    if (!req.node.empty() && req.node != n.name) score += 50;
    if (!market_ok(n, req, Capacity::total)) ++score;
    if (n.total.cpus < req.cpus) ++score;
    if (n.total.memory_mib < req.memory_mib) ++score;
    for (const auto& [k, v] : req.labels) {
      auto it = n.labels.find(k);
      if (it == n.labels.end() || it->second != v) ++score;
    }
    if (req.gpus > 0 && n.gpus.empty()) score += 3;
    else if (req.gpus > 0) {
      Node copy = n;
      copy.available = copy.total;
      for (auto& g : copy.gpus) g.free = kOne;
      ResourceRequest gpu_only = req;  // the GPU part of the request alone
      gpu_only.cpus = gpu_only.memory_mib = 0;
      gpu_only.custom.clear();
      gpu_only.labels.clear();
      gpu_only.node.clear();
      gpu_only.max_price = gpu_only.min_reputation = 0;
      if (!fits(copy, gpu_only, Capacity::total)) score += 2;
    }
    if (score < best_score) {
      best_score = score;
      best = &n;
    }
  }
  if (best) os << "; closest node " << best->describe() << ": " << first_unmet(*best, req);
  else os << "; the cluster has no nodes";
  return os.str();
}

}  // namespace iogrid::sched
