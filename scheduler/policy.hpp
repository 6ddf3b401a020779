// A scheduling policy picks one node for one request from the cluster state. Policies are stateless apart
// from what they are given (randomness and round-robin cursors are injected/owned explicitly), so tests
// construct a cluster and assert the exact node chosen.
// Scale rule shared by the indexed policies (pack/best-fit, spread, dot-product, fgd, market): they score the
// first kCandidatesPerClass fitting nodes of each node class (ClusterState::candidates), so a decision costs
// O(classes x (log n + k)), not O(n). With at most k fitting nodes per class that is every fitting node; with
// more, the ones a class's order ranks first (tightest for packing policies, loosest for spread). The baselines
// random and first-fit look at every node.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "scheduler/cluster_state.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::sched {

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  // The index of a node whose available capacity fits `req`, or nullopt when none fits now.
  virtual std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) = 0;
  // The same on a plain view (indexes a copy of it: for tests and one-off decisions).
  std::optional<std::uint32_t> select(const ClusterView& view, const ResourceRequest& req) {
    return select(ClusterState(view), req);
  }
  virtual std::string_view name() const = 0;
};

// "pack" (also "best-fit"), "spread", "random" (seeded), "first-fit", "dot-product", "fgd" (fragmentation-aware)
// or "market" (price, reputation and region against fit); throws std::invalid_argument naming the choices otherwise.
std::unique_ptr<SchedulingPolicy> make_policy(const std::string& name, std::uint64_t seed = 1);

}  // namespace iogrid::sched
