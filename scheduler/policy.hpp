// A scheduling policy picks one node for one request from the cluster state. Policies are stateless apart
// from what they are given (randomness and round-robin cursors are injected/owned explicitly), so tests
// construct a cluster and assert the exact node chosen.
// Scale rules: pack (best fit) walks each node class's best-fit order (ClusterState::best_fit) and makes
// exactly the choice scoring every node would; fgd scores distinct node states, a bounded number per class
// (fgd_policy.hpp); spread, dot-product and market score the first kCandidatesPerClass fitting nodes of each
// class (ClusterState::candidates), so a decision costs O(classes x (log n + k)), not O(n): every fitting node
// when a class has at most k, else the ones its order ranks first (tightest, or loosest for spread). The
// baselines random, first-fit and exhaustive-best-fit look at every node.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  // Chooses a node with select() and takes the request from it; a share of one GPU goes to the device the
  // policy chose when it chose one (chosen_device), else to allocate()'s choice.
  std::optional<Allocation> place(ClusterState& state, const ResourceRequest& req) {
    auto n = select(state, req);
    if (!n) return std::nullopt;
    return state.allocate(*n, req, chosen_device());
  }
  // The device of the last select()'s node a share of one GPU should use; nullopt: no preference.
  virtual std::optional<std::uint32_t> chosen_device() const { return std::nullopt; }
  // A hint: the requests this policy will be asked to place (a trace's tasks, in any order). Policies that
  // learn the workload start from it instead of learning as requests come.
  virtual void expect(const std::vector<ResourceRequest>& requests) { (void)requests; }
};

// "pack" (also "best-fit"), "exhaustive-best-fit" (the same choice found by scoring every node: the
// reference), "spread", "random" (seeded), "first-fit", "dot-product", "fgd" (fragmentation-aware),
// "fgd-exhaustive" (fgd without its search cut) or "market" (price, reputation and region against fit);
// throws std::invalid_argument naming the choices otherwise.
std::unique_ptr<SchedulingPolicy> make_policy(const std::string& name, std::uint64_t seed = 1);

// The head's policy unless `iogrid head --policy` names another: the one that places most GPU work in
// `iogrid bench scale`'s replays (fgd; pack, its best fit, is never better there).
inline constexpr const char* kDefaultPolicy = "fgd";

}  // namespace iogrid::sched
