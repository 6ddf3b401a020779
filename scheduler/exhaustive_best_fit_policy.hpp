// ExhaustiveBestFitPolicy: the best-fit reference. Assumptions: none beyond a current view.
// Rules: score every node that fits the request now by the capacity it has left (ClusterState::fit_key: free
// CPUs and free GPU capacity, each normalised by the largest node of the cluster, as the FGD paper's best-fit
// baseline scores them) and choose the smallest; ties go to the lowest node index. O(n) a decision: the
// baseline that pack (the same choice through the index) and fgd are measured against.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class ExhaustiveBestFitPolicy final : public SchedulingPolicy {
 public:
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "exhaustive-best-fit"; }
};

}  // namespace iogrid::sched
