#include "runtime/job_actor.hpp"

#include "runtime/messages.hpp"

namespace iogrid::runtime {

namespace {
struct JobState {
  caf::actor head;
  std::string id;
  std::uint64_t leases_requested = 0;
  static inline const char* name = "iogrid.job";
};

caf::behavior job_actor(caf::stateful_actor<JobState>* self, caf::actor head, std::string id) {
  self->state.head = std::move(head);
  self->state.id = std::move(id);
  return {
      [=](lease_atom, LeaseRequest req) {
        ++self->state.leases_requested;
        self->send(self->state.head, lease_atom::value, std::move(req));
      },
      [=](stats_atom) { return self->state.leases_requested; },
  };
}
}  // namespace

caf::actor spawn_job(caf::actor_system& sys, caf::actor head, std::string job_id) {
  return sys.spawn(job_actor, std::move(head), std::move(job_id));
}

}  // namespace iogrid::runtime
