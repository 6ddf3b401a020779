#include "worker/worker_actor.hpp"

#include "worker/worker_thread.hpp"

namespace iogrid::worker {

namespace {
struct WorkerState {
  std::unique_ptr<WorkerThread> thread;
};

caf::behavior worker_actor(caf::stateful_actor<WorkerState>* self, caf::actor node, WorkerContext ctx) {
  self->state.thread = std::make_unique<WorkerThread>(std::move(ctx));
  return {
      [=](serve_atom, std::shared_ptr<WorkSource> src, sched::Allocation alloc) {
        auto me = caf::actor_cast<caf::actor>(self);
        WorkerThread::Hooks hooks;
        hooks.on_end = [node, me, alloc] { caf::anon_send(node, idle_atom::value, me, alloc); };
        hooks.on_block = [node, alloc] { caf::anon_send(node, blocked_atom::value, alloc); };
        hooks.on_unblock = [node, alloc] { caf::anon_send(node, unblocked_atom::value, alloc); };
        for (const auto& [device, f] : alloc.gpus) hooks.gpus.emplace_back(device, double(f) / double(sched::kOne));
        self->state.thread->serve(std::move(src), std::move(hooks));
      },
  };
}
}  // namespace

caf::actor spawn_worker(caf::actor_system& sys, caf::actor node, WorkerContext ctx) {
  return sys.spawn(worker_actor, std::move(node), std::move(ctx));
}

}  // namespace iogrid::worker
