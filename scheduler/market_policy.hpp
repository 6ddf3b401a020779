// MarketPolicy: trades fit against price, reputation and region on a network of independently owned nodes.
// Assumptions: a node's price is per GPU-hour (CPU-only work is not priced); reputation is in [0,1] (see
// reputation.hpp for how outcomes move it); hard limits (price ceiling, reputation floor, verified GPUs) are
// already enforced by feasibility, so this policy only ranks nodes that are allowed.
// Rules: candidates are the kCandidatesPerClass tightest-fitting nodes of each class; each gets
//   score = fit * utilisation_after            (best fit: fuller nodes first, as pack)
//         + price * (1 - node price / reference price)   (GPU work only; reference: the request's ceiling,
//                                                          else the dearest candidate; the node's price is what
//                                                          the request pays there, sched::pay_price)
//         + reputation * node reputation
//         + region * [node's region is one of the request's preferred regions]
// and the highest score wins; ties go to the lowest node index. Default weights: fit 1, price 1,
// reputation 0.5, region 0.5: a node at half the price beats a perfect fit, a fully trusted node beats one at
// reputation 0.5 when prices and fit are equal.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

struct MarketWeights {
  double fit = 1.0;
  double price = 1.0;
  double reputation = 0.5;
  double region = 0.5;
};

class MarketPolicy final : public SchedulingPolicy {
 public:
  explicit MarketPolicy(MarketWeights w = {}) : w_(w) {}
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "market"; }
  const MarketWeights& weights() const { return w_; }

 private:
  MarketWeights w_;
};

}  // namespace iogrid::sched
