#include "runtime/head_actor.hpp"

#include <deque>
#include <unordered_map>

#include "runtime/messages.hpp"
#include "scheduler/feasibility.hpp"

namespace iogrid::runtime {

namespace {

struct HeadState {
  sched::ClusterState state;
  std::shared_ptr<sched::SchedulingPolicy> policy;
  std::vector<caf::actor> nodes;
  std::deque<LeaseRequest> pending;
  std::unordered_map<std::string, std::string> kv;
  HeadStats stats;
  static inline const char* name = "iogrid.head";
};

using Self = caf::stateful_actor<HeadState>;

// Grants `req` now if some node has room; returns false when it must wait.
bool try_grant(Self* self, LeaseRequest& req) {
  auto& st = self->state;
  auto node = st.policy->select(st.state, req.request);
  if (!node) return false;
  auto alloc = st.state.allocate(*node, req.request);
  if (!alloc) return false;
  ++st.stats.leases_granted;
  req.client->lease_granted();
  self->send(st.nodes[*node], start_atom::value, std::move(req.source), *alloc);
  return true;
}

void grant_pending(Self* self) {
  auto& pending = self->state.pending;
  for (auto it = pending.begin(); it != pending.end();) {
    if (try_grant(self, *it)) it = pending.erase(it);
    else ++it;
  }
}

caf::behavior head_actor(Self* self, sched::ClusterView view, std::shared_ptr<sched::SchedulingPolicy> policy) {
  self->state.state = sched::ClusterState(std::move(view));
  self->state.policy = std::move(policy);
  return {
      [=](nodes_atom, std::vector<caf::actor> nodes) { self->state.nodes = std::move(nodes); },
      [=](lease_atom, LeaseRequest req) {
        auto& st = self->state;
        if (!st.state.feasible(req.request)) {
          ++st.stats.leases_infeasible;
          req.client->lease_failed(std::make_shared<const detail::ErrorInfo>(
              detail::ErrorInfo{detail::ErrorKind::infeasible, "", "", "iogrid: " + sched::explain_infeasible(st.state.view(), req.request)}));
          return;
        }
        if (!st.pending.empty() || !try_grant(self, req)) {
          ++st.stats.leases_queued;
          st.pending.push_back(std::move(req));
        }
      },
      [=](release_atom, sched::Allocation alloc) {
        auto& st = self->state;
        st.state.release(alloc);
        grant_pending(self);
      },
      // A worker parked in get/wait lends its CPUs out (its GPUs stay held), as Ray does; on resuming it
      // takes them back even if that briefly over-commits the node.
      [=](worker::blocked_atom, const sched::Allocation& alloc) {
        auto& st = self->state;
        if (alloc.node < st.state.size()) st.state.adjust_cpus(alloc.node, alloc.cpus);
        grant_pending(self);
      },
      [=](worker::unblocked_atom, const sched::Allocation& alloc) {
        auto& st = self->state;
        if (alloc.node < st.state.size()) st.state.adjust_cpus(alloc.node, -alloc.cpus);
      },
      [=](view_atom) { return self->state.state.view(); },
      [=](stats_atom) { return self->state.stats; },
      [=](kv_put_atom, const std::string& k, const std::string& v) { self->state.kv[k] = v; },
      // Answers an empty list when the key is missing, else one value.
      [=](kv_get_atom, const std::string& k) -> std::vector<std::string> {
        auto it = self->state.kv.find(k);
        if (it == self->state.kv.end()) return {};
        return {it->second};
      },
  };
}

}  // namespace

caf::actor spawn_head(caf::actor_system& sys, sched::ClusterView view, std::unique_ptr<sched::SchedulingPolicy> policy) {
  return sys.spawn(head_actor, std::move(view), std::shared_ptr<sched::SchedulingPolicy>(std::move(policy)));
}

}  // namespace iogrid::runtime
