// The control-plane vocabulary between head, node and job actors (embedded mode: in-process messages).
// Everything here that will cross a process boundary in cluster mode has a Cap'n Proto twin in proto/.
#pragma once

#include <caf/all.hpp>

#include "runtime/head/head_core.hpp"
#include "runtime/lease_client.hpp"
#include "scheduler/resources.hpp"
#include "worker/worker_actor.hpp"

namespace iogrid::runtime {

using lease_atom = caf::atom_constant<caf::atom("lease")>;        // job -> head: (lease, LeaseRequest)
using release_atom = caf::atom_constant<caf::atom("release")>;    // node -> head: (release, Allocation)
using start_atom = caf::atom_constant<caf::atom("start")>;        // head -> node: (start, source, Allocation)
using view_atom = caf::atom_constant<caf::atom("view")>;          // -> head: ClusterView snapshot
using kv_put_atom = caf::atom_constant<caf::atom("kv_put")>;      // -> head: (kv_put, key, value)
using kv_get_atom = caf::atom_constant<caf::atom("kv_get")>;      // -> head: (kv_get, key) -> value
using stats_atom = caf::atom_constant<caf::atom("stats")>;        // -> head/job: counters
using tick_atom = caf::atom_constant<caf::atom("tick")>;          // head -> itself: periodic housekeeping
using status_atom = caf::atom_constant<caf::atom("status")>;      // -> head: the status document (JSON text)
using admin_atom = caf::atom_constant<caf::atom("admin")>;
using task_report_atom = caf::atom_constant<caf::atom("taskrep")>;  // -> head: (taskrep, JSON of TaskStats::snapshot)
using ui_admin_atom = caf::atom_constant<caf::atom("uiadmin")>;  // -> head: (uiadmin, command, args, who) -> (ok, body or error)        // -> head: (admin, command, args JSON) -> (ok, body or error)

}  // namespace iogrid::runtime

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(iogrid::runtime::LeaseRequest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(iogrid::sched::ClusterView)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(iogrid::runtime::head::HeadStats)
