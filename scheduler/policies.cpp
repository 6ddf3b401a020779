#include <stdexcept>
#include <vector>

#include "scheduler/dot_product_policy.hpp"
#include "scheduler/exhaustive_best_fit_policy.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/fgd_policy.hpp"
#include "scheduler/first_fit_policy.hpp"
#include "scheduler/market_policy.hpp"
#include "scheduler/pack_policy.hpp"
#include "scheduler/random_policy.hpp"
#include "scheduler/spread_policy.hpp"

namespace iogrid::sched {

namespace {

using Order = ClusterState::Order;

// Keeps the highest score; equal scores go to the lowest node index.
struct Best {
  std::optional<std::uint32_t> node;
  double score = 0;
  void offer(std::uint32_t i, double s) {
    if (!node || s > score + 1e-12 || (s > score - 1e-12 && i < *node)) {
      node = i;
      score = s;
    }
  }
};

}  // namespace

std::optional<std::uint32_t> PackPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  return state.best_fit(req);
}

std::optional<std::uint32_t> ExhaustiveBestFitPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  std::optional<std::pair<Milli, std::uint32_t>> best;
  for (const auto& n : state.nodes()) {
    if (!state.usable(n) || !fits(n, req, Capacity::available)) continue;
    std::pair<Milli, std::uint32_t> key{state.fit_key(n), n.index};
    if (!best || key < *best) best = key;
  }
  if (!best) return std::nullopt;
  return best->second;
}

std::optional<std::uint32_t> SpreadPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  const auto count = static_cast<std::uint32_t>(std::max<std::size_t>(state.size(), 1));
  std::optional<std::uint32_t> best;
  double best_u = 2;
  std::uint32_t best_turn = 0;
  state.candidates(req, Order::loosest, kCandidatesPerClass, [&](const Node& n) {
    double u = utilization(n);
    std::uint32_t turn = (n.index + count - cursor_ % count) % count;  // rotation among equals
    if (!best || u < best_u - 1e-12 || (u < best_u + 1e-12 && turn < best_turn)) {
      best = n.index;
      best_u = u;
      best_turn = turn;
    }
    return true;
  });
  if (best) cursor_ = (*best + 1) % count;
  return best;
}

std::optional<std::uint32_t> RandomPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  std::vector<std::uint32_t> ok;
  for (const auto& n : state.nodes())
    if (state.usable(n) && fits(n, req, Capacity::available)) ok.push_back(n.index);
  if (ok.empty()) return std::nullopt;
  return ok[rng_() % ok.size()];
}

std::optional<std::uint32_t> FirstFitPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  for (const auto& n : state.nodes())
    if (state.usable(n) && fits(n, req, Capacity::available)) return n.index;
  return std::nullopt;
}

std::optional<std::uint32_t> DotProductPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  Best best;
  auto norm = [](Milli v, Milli total) { return total > 0 ? double(v) / double(total) : 0.0; };
  state.candidates(req, Order::tightest, kCandidatesPerClass, [&](const Node& n) {
    Milli gpu_free = 0;
    for (const auto& g : n.gpus) gpu_free += g.free;
    Milli gpu_total = Milli(n.gpus.size()) * kOne;
    best.offer(n.index, norm(req.cpus, n.total.cpus) * norm(n.available.cpus, n.total.cpus) +
                            norm(req.memory_mib, n.total.memory_mib) * norm(n.available.memory_mib, n.total.memory_mib) +
                            norm(req.gpus, gpu_total) * norm(gpu_free, gpu_total));
    return true;
  });
  return best.node;
}

std::optional<std::uint32_t> MarketPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  struct Candidate {
    std::uint32_t node;
    double fit, price, reputation;
    bool preferred;
  };
  std::vector<Candidate> cands;
  double dearest = 0;
  state.candidates(req, Order::tightest, kCandidatesPerClass, [&](const Node& n) {
    bool preferred = false;
    for (const auto& r : req.preferred_regions) preferred = preferred || r == n.region();
    const double price = pay_price(n, req);
    cands.push_back(Candidate{n.index, utilization_after(n, req), price, n.reputation, preferred});
    dearest = std::max(dearest, price);
    return true;
  });
  const double reference = req.max_price > 0 ? req.max_price : dearest;
  Best best;
  for (const auto& c : cands) {
    double s = w_.fit * c.fit + w_.reputation * c.reputation + (c.preferred ? w_.region : 0.0);
    if (req.gpus > 0 && reference > 0) s += w_.price * (1.0 - c.price / reference);
    best.offer(c.node, s);
  }
  return best.node;
}

std::unique_ptr<SchedulingPolicy> make_policy(const std::string& name, std::uint64_t seed) {
  if (name == "pack" || name == "best-fit") return std::make_unique<PackPolicy>();
  if (name == "exhaustive-best-fit") return std::make_unique<ExhaustiveBestFitPolicy>();
  if (name == "fgd-exhaustive") return std::make_unique<FgdPolicy>(0);
  if (name == "spread") return std::make_unique<SpreadPolicy>();
  if (name == "random") return std::make_unique<RandomPolicy>(seed);
  if (name == "first-fit") return std::make_unique<FirstFitPolicy>();
  if (name == "dot-product") return std::make_unique<DotProductPolicy>();
  if (name == "fgd") return std::make_unique<FgdPolicy>();
  if (name == "market") return std::make_unique<MarketPolicy>();
  throw std::invalid_argument("unknown scheduling policy '" + name +
                              "' (choose pack, best-fit, exhaustive-best-fit, spread, random, first-fit, dot-product, fgd, fgd-exhaustive or market)");
}

}  // namespace iogrid::sched
