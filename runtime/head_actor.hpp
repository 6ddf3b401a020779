// HeadActor (embedded mode): the head of an embedded cluster, one per process. A thin shell over the head
// core (runtime/head/head_core.hpp): lease requests, releases and operator commands arrive as actor
// messages and go to the core; grants go to the node actors, refusals to the lease client that asked.
// The nodes are the embedded runtime's virtual nodes (alive as long as the process); the one job is the
// process's driver.
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <string>

#include "runtime/head/history.hpp"

#include "scheduler/policy.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::runtime {

// `history`: where the head records telemetry and events (shared with a dashboard); empty: its own, in memory.
caf::actor spawn_head(caf::actor_system& sys, sched::ClusterView view, const std::string& policy = sched::kDefaultPolicy,
                      std::shared_ptr<head::History> history = nullptr);
// Tells the head which node actor serves node index i (in order).
using nodes_atom = caf::atom_constant<caf::atom("nodes")>;

}  // namespace iogrid::runtime

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<caf::actor>)
