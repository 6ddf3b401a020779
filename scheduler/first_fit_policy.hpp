// FirstFitPolicy: the classic baseline. Assumptions: none beyond a current view.
// Rules: the lowest-indexed node whose available capacity fits the request.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class FirstFitPolicy final : public SchedulingPolicy {
 public:
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "first-fit"; }
};

}  // namespace iogrid::sched
