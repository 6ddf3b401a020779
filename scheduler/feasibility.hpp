// Feasibility (could a node ever run this request?) and availability (can it run it now?),
// allocation and release. Pure functions over the resource model; policies build on them.
// Rules: hard constraints are CPU, memory, custom resources, GPU count/fraction, accepted models,
// minimum GPU memory, compute capability and verified throughput, GPU verification, label selector, node
// affinity, reputation floor and price ceiling; a dead node fits nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

enum class Capacity { total, available };

// A GPU matches when its model is accepted, it has the memory, compute capability and verified throughput
// asked for, and it is verified (or the request allows unverified GPUs).
bool gpu_matches(const Gpu& gpu, const ResourceRequest& req);
// What GPU work pays per GPU-hour on `node`: its market's posted price x the request's tier multiplier, or the
// node's own price while its market has no posted price.
double pay_price(const Node& node, const ResourceRequest& req);
// The per-node checks that differ between otherwise identical nodes: nodes the request avoids, the reputation
// floor, and for GPU work the price: the provider's ask is its reserve (no work paying less than it), and what
// the request pays must be within its max_price. With Capacity::total, whether it could ever be: the posted
// price can fall to the provider's ask, so only a max_price below the ask rules the node out for good.
bool market_ok(const Node& node, const ResourceRequest& req, Capacity which = Capacity::available);
bool fits(const Node& node, const ResourceRequest& req, Capacity which);
// The resource part of fits(): CPUs, memory, custom resources, labels and GPUs (not liveness, node affinity,
// price or reputation, which differ between otherwise identical nodes).
bool fits_resources(const Node& node, const ResourceRequest& req, Capacity which);
// Takes the request's resources from `node` (must fit its available capacity). Fractions go to `device` when
// given (it must match and have room), otherwise to the matching GPU with the least free capacity that still
// fits (packing fractions onto shared devices).
std::optional<Allocation> allocate(Node& node, const ResourceRequest& req, std::optional<std::uint32_t> device = {});
// What allocate() would take, without taking it.
std::optional<Allocation> plan(const Node& node, const ResourceRequest& req, std::optional<std::uint32_t> device = {});
void release(Node& node, const Allocation& alloc);
// Takes exactly `alloc` from `node` again (a lease that survived a head restart); false, with the node
// unchanged, when the node's available capacity no longer holds it.
bool reserve(Node& node, const Allocation& alloc);

// Fraction in [0,1]: the most-used dimension (CPU, memory, GPU) of the node.
double utilization(const Node& node);
// The same after `req` were placed on `node` (no copy of the node is made).
double utilization_after(const Node& node, const ResourceRequest& req);

// For a request no node can ever satisfy: names the request and the node that comes closest and why it fails.
std::string explain_infeasible(const ClusterView& view, const ResourceRequest& req);
// The first unmet constraint of `req` on `node` (total capacity), or empty when it fits.
std::string first_unmet(const Node& node, const ResourceRequest& req);

}  // namespace iogrid::sched
