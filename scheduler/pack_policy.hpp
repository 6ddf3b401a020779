// PackPolicy: best fit. Assumptions: the view's `available` capacity is current.
// Rules: among nodes whose available capacity fits the request, choose the one that will be most
// utilised after placing it (fills nodes up before touching empty ones, leaving whole nodes free for
// large requests); ties go to the lowest node index, so the choice is deterministic.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class PackPolicy final : public SchedulingPolicy {
 public:
  std::optional<std::uint32_t> select(const ClusterView& view, const ResourceRequest& req) override;
  std::string_view name() const override { return "pack"; }
};

}  // namespace iogrid::sched
