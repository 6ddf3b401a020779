// JobActor: one per driver (job). The job's lease requests go through it to the head, so per-job
// accounting (leases asked for, for fair share and status) lives in one place.
#pragma once

#include <caf/all.hpp>
#include <string>

namespace iogrid::runtime {

caf::actor spawn_job(caf::actor_system& sys, caf::actor head, std::string job_id);

}  // namespace iogrid::runtime
