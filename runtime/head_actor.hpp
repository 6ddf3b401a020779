// HeadActor (embedded mode): one per cluster. Wraps a sched::Scheduler: places worker leases with the
// scheduling policy, queues leases that fit the cluster but not its free capacity right now (the scheduler
// grants them as capacity returns, by its priority and fair-share rules), fails at once those no node could
// ever run, and keeps the key-value store used for rendezvous.
#pragma once

#include <caf/all.hpp>
#include <memory>

#include "scheduler/policy.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::runtime {

caf::actor spawn_head(caf::actor_system& sys, sched::ClusterView view, std::unique_ptr<sched::SchedulingPolicy> policy);
// Tells the head which node actor serves node index i (in order).
using nodes_atom = caf::atom_constant<caf::atom("nodes")>;

}  // namespace iogrid::runtime

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<caf::actor>)
