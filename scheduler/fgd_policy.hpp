// FgdPolicy: fragmentation gradient descent (FGD, "Beware of Fragmentation", ATC'23).
// Assumptions: the recent mix of GPU requests predicts the next ones; the policy learns it from the requests
// it is asked to place (a WorkloadHistogram), or is given one; its shape list is refreshed after every request
// while fewer than 1024 were seen, then every 256 requests.
// Rules: for each candidate node (tightest first, see policy.hpp), plan the request (same device choice as allocate()) and
// measure how much the node's expected stranded GPU capacity grows under the workload; choose the node with
// the smallest growth. Requests without GPUs go to the node where they strand the least GPU capacity too
// (their CPUs can strand a GPU node). Ties go to the lowest node index.
#pragma once

#include "scheduler/fragmentation.hpp"
#include "scheduler/policy.hpp"

namespace iogrid::sched {

class FgdPolicy final : public SchedulingPolicy {
 public:
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "fgd"; }
  WorkloadHistogram& workload() { return workload_; }

 private:
  WorkloadHistogram workload_;
  std::vector<TaskShape> shapes_;
  std::uint64_t seen_ = 0;
};

}  // namespace iogrid::sched
