// Gangs (placement groups): several bundles of resources reserved together, all or nothing.
// Assumptions: bundles are ordinary resource requests; a gang is placed on the current available capacity
// of a ClusterState and holds its bundles until removed; tasks and actors that target a bundle then draw
// on the bundle's reservation (BundlePool), never on the node's free capacity.
// Rules:
// - strict-pack: every bundle on one node. pack: one node if possible, otherwise as few nodes as possible
//   (each bundle first tries the nodes the gang already uses). strict-spread: every bundle on a different
//   node. spread: different nodes where possible, otherwise the node the gang uses least.
// - Within those rules a bundle goes to the best-fitting allowed node (the pack policy's rule: the node most
//   utilised afterwards, lowest index on ties), among the candidates ClusterState offers.
// - same_region: every bundle in one region (the node label "region"); regions are tried in the order of the
//   first bundle's preferred_regions, then by most free GPU capacity (CPU capacity for CPU-only gangs).
// - Atomic: if any bundle cannot be placed, everything taken so far is given back and nothing changes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "scheduler/cluster_state.hpp"

namespace iogrid::sched {

enum class GangStrategy { pack, spread, strict_pack, strict_spread };
GangStrategy parse_strategy(const std::string& name);  // "pack", "spread", "strict-pack", "strict-spread"
const char* to_string(GangStrategy s);

struct GangRequest {
  std::vector<ResourceRequest> bundles;
  GangStrategy strategy = GangStrategy::pack;
  bool same_region = false;
  std::string describe() const;
};

struct GangPlacement {
  std::vector<Allocation> bundles;  // one per bundle, in order
  std::string region;               // set when same_region was asked for
};

// Reserves every bundle or none (nullopt: not now; the state is unchanged).
std::optional<GangPlacement> place_gang(ClusterState& state, const GangRequest& gang);
void release_gang(ClusterState& state, const GangPlacement& placement);
// Whether the gang could ever be placed on the live nodes' total capacity; when not, `why` says which
// constraint fails and what comes closest.
bool gang_feasible(const ClusterState& state, const GangRequest& gang, std::string* why = nullptr);

// For a gang that cannot be placed now: which constraint fails and the closest offer, found by relaxing one
// constraint at a time on a copy of the state (price ceiling, reputation floor, region, GPU models, then fewer
// bundles). Costs a few placements on copies: for user-facing reservations, not for the hot path.
std::string explain_unplaced(const ClusterState& state, const GangRequest& gang);

// A bundle's reservation as a pool that tasks and actors targeting the bundle allocate from. Allocations it
// hands out are in node terms (node index, the node's device indices), so they can be sent to the node.
class BundlePool {
 public:
  BundlePool(const Allocation& reserved, const Node& node);
  std::optional<Allocation> allocate(const ResourceRequest& req);  // ignores node affinity, price, reputation
  void release(const Allocation& a);
  // Takes exactly `a` (node terms) from the bundle again (a lease found running after a restart); false,
  // unchanged, when the bundle does not hold it.
  bool adopt(const Allocation& a);
  bool fits_ever(const ResourceRequest& req) const;
  const Allocation& reserved() const { return reserved_; }

 private:
  std::optional<Allocation> to_local(const Allocation& a) const;  // node devices -> bundle devices
  Allocation reserved_;
  Node pool_;  // the bundle as a small node: its devices are the reserved fractions
};

}  // namespace iogrid::sched
