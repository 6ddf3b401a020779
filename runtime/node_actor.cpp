#include "runtime/node_actor.hpp"

#include <vector>

#include "runtime/messages.hpp"
#include "worker/worker_actor.hpp"

namespace iogrid::runtime {

namespace {

struct NodeState {
  caf::actor head;
  worker::WorkerContext ctx;
  std::vector<caf::actor> idle;
  std::uint64_t workers_started = 0;
  static inline const char* name = "iogrid.node";
};

caf::behavior node_actor(caf::stateful_actor<NodeState>* self, caf::actor head, worker::WorkerContext ctx) {
  self->state.head = std::move(head);
  self->state.ctx = std::move(ctx);
  return {
      [=](start_atom, std::shared_ptr<worker::WorkSource> src, sched::Allocation alloc) {
        auto& st = self->state;
        caf::actor w;
        if (!st.idle.empty()) {
          w = st.idle.back();
          st.idle.pop_back();
        } else {
          auto wctx = st.ctx;
          wctx.worker_id = ++st.workers_started;
          w = worker::spawn_worker(self->system(), caf::actor_cast<caf::actor>(self), wctx);
          self->link_to(w);  // workers stop with their node
        }
        self->send(w, worker::serve_atom::value, std::move(src), std::move(alloc));
      },
      [=](worker::blocked_atom, const sched::Allocation& alloc) {
        self->send(self->state.head, worker::blocked_atom::value, alloc);
      },
      [=](worker::unblocked_atom, const sched::Allocation& alloc) {
        self->send(self->state.head, worker::unblocked_atom::value, alloc);
      },
      [=](worker::idle_atom, caf::actor w, sched::Allocation alloc) {
        self->state.idle.push_back(std::move(w));
        self->send(self->state.head, release_atom::value, std::move(alloc));
      },
  };
}

}  // namespace

caf::actor spawn_node(caf::actor_system& sys, caf::actor head, worker::WorkerContext ctx) {
  return sys.spawn(node_actor, std::move(head), std::move(ctx));
}

}  // namespace iogrid::runtime
