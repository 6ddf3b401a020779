// DotProductPolicy: the alignment heuristic of Tetris (SIGCOMM'14). Assumptions: CPUs, memory and GPUs are
// comparable once each is divided by the node's total.
// Rules: among nodes that fit, choose the one whose normalised free capacity vector has the largest dot product
// with the normalised request (the node whose spare resources match the request's shape best); ties go to the
// lowest node index.
#pragma once

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class DotProductPolicy final : public SchedulingPolicy {
 public:
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "dot-product"; }
};

}  // namespace iogrid::sched
