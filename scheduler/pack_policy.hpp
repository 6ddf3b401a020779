// PackPolicy: best fit (also named "best-fit"). Assumptions: the state's `available` capacity is current.
// Rules: choose the node that fits the request now with the least capacity left (ClusterState::best_fit: free
// CPUs and free GPU capacity, each normalised by the largest node; fills nodes up before touching empty ones,
// leaving whole nodes free for large requests); ties go to the lowest node index. The index finds exactly the
// node exhaustive-best-fit finds by scoring every node.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class PackPolicy final : public SchedulingPolicy {
 public:
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "pack"; }
};

}  // namespace iogrid::sched
