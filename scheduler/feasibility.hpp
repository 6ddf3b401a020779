// Feasibility (could a node ever run this request?) and availability (can it run it now?),
// allocation and release. Pure functions over the resource model; policies build on them.
// Rules: hard constraints are CPU, memory, custom resources, GPU count/fraction, accepted models,
// minimum GPU memory and compute capability, label selector and node affinity; a dead node fits nothing.
#pragma once

#include <optional>
#include <string>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

enum class Capacity { total, available };

bool gpu_matches(const Gpu& gpu, const ResourceRequest& req);
bool fits(const Node& node, const ResourceRequest& req, Capacity which);
// Takes the request's resources from `node` (must fit its available capacity). Fractions go to the
// matching GPU with the least free capacity that still fits (packing fractions onto shared devices).
std::optional<Allocation> allocate(Node& node, const ResourceRequest& req);
void release(Node& node, const Allocation& alloc);
// Takes exactly `alloc` from `node` again (a lease that survived a head restart); false, with the node
// unchanged, when the node's available capacity no longer holds it.
bool reserve(Node& node, const Allocation& alloc);

// Fraction in [0,1]: the most-used dimension (CPU, memory, GPU) of the node.
double utilization(const Node& node);

// For a request no node can ever satisfy: names the request and the node that comes closest and why it fails.
std::string explain_infeasible(const ClusterView& view, const ResourceRequest& req);
// The first unmet constraint of `req` on `node` (total capacity), or empty when it fits.
std::string first_unmet(const Node& node, const ResourceRequest& req);

}  // namespace iogrid::sched
