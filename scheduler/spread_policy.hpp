// SpreadPolicy: least loaded. Assumptions: the view's `available` capacity is current.
// Rules: among the candidate nodes (loosest first, see policy.hpp) choose the least utilised one; among equally
// utilised nodes, rotate (a cursor owned by the policy) so consecutive requests land on different nodes.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class SpreadPolicy final : public SchedulingPolicy {
 public:
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "spread"; }

 private:
  std::uint32_t cursor_ = 0;
};

}  // namespace iogrid::sched
