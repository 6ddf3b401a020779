// WorkerActor: the actor face of one worker thread. Its node hands it leases ('serve'); when a lease
// runs dry the worker reports back to its node ('worker_idle') with the allocation it held.
#pragma once

#include <caf/all.hpp>
#include <memory>

#include "scheduler/resources.hpp"
#include "worker/work_source.hpp"

namespace iogrid::worker {

using serve_atom = caf::atom_constant<caf::atom("serve")>;
using idle_atom = caf::atom_constant<caf::atom("wk_idle")>;
using blocked_atom = caf::atom_constant<caf::atom("wk_block")>;      // -> node: (blocked, allocation)
using unblocked_atom = caf::atom_constant<caf::atom("wk_unblock")>;

// Spawns a worker of `node`; on each lease end it sends (idle_atom, worker, allocation) to `node`.
caf::actor spawn_worker(caf::actor_system& sys, caf::actor node, WorkerContext ctx);

}  // namespace iogrid::worker

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<iogrid::worker::WorkSource>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(iogrid::sched::Allocation)
