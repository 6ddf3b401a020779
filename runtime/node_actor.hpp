// NodeActor: one per machine (or virtual node in embedded mode). Runs the node's worker pool: a lease
// from the head goes to an idle worker (or a new one); a worker whose lease ran dry comes back to the
// pool and the lease's resources go back to the head.
#pragma once

#include <caf/all.hpp>
#include <string>

#include "worker/work_source.hpp"

namespace iogrid::runtime {

caf::actor spawn_node(caf::actor_system& sys, caf::actor head, worker::WorkerContext ctx);

}  // namespace iogrid::runtime
