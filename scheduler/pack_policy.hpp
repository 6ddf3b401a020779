// PackPolicy: best fit (also named "best-fit"). Assumptions: the state's `available` capacity is current.
// Rules: among the candidate nodes (tightest first, see policy.hpp) choose the one that will be most
// utilised after placing it (fills nodes up before touching empty ones, leaving whole nodes free for
// large requests); ties go to the lowest node index, so the choice is deterministic.
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
