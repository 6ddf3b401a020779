#include "runtime/head_actor.hpp"

#include <deque>
#include <unordered_map>

#include "runtime/messages.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/scheduler.hpp"
#include "runtime/reservations.hpp"

namespace iogrid::runtime {

namespace {

struct LeaseBook {  // what the ledger needs about a running lease
  std::chrono::steady_clock::time_point start;
  double price = 0;
};

struct HeadState {
  std::shared_ptr<sched::Scheduler> scheduler;
  sched::Ledger ledger;
  std::unique_ptr<ReservationBook> reservations;
  std::unordered_map<std::uint64_t, LeaseBook> leases;  // by Allocation::lease
  std::uint64_t next_lease = 1;
  std::vector<caf::actor> nodes;
  std::unordered_map<std::uint64_t, LeaseRequest> waiting;  // by scheduler ticket
  std::unordered_map<std::string, std::string> kv;
  HeadStats stats;
  static inline const char* name = "iogrid.head";
};

using Self = caf::stateful_actor<HeadState>;

// Embedded mode runs one driver: its leases are one job to the scheduler.
const std::string kJob = "driver";

void grant(Self* self, LeaseRequest& req, sched::Allocation alloc) {
  auto& st = self->state;
  ++st.stats.leases_granted;
  alloc.lease = st.next_lease++;
  if (!alloc.gpus.empty())
    st.leases[alloc.lease] = LeaseBook{std::chrono::steady_clock::now(),
                                       st.scheduler->cluster().node(alloc.node).price_per_gpu_hour};
  req.client->lease_granted();
  self->send(st.nodes[alloc.node], start_atom::value, std::move(req.source), alloc);
}

// Charges an ended lease to the ledger.
void charge(HeadState& st, const sched::Allocation& alloc) {
  auto it = st.leases.find(alloc.lease);
  if (it == st.leases.end()) return;
  const double gpus = sched::gpu_count(alloc);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.start).count();
  st.ledger.lease(kJob, alloc.gang ? reservation_name(alloc.gang) : "", st.scheduler->cluster().node(alloc.node).name,
                  gpus, secs, it->second.price);
  st.leases.erase(it);
}

void hand_out(Self* self, std::vector<sched::Grant> grants) {
  auto& st = self->state;
  for (auto& g : grants) {
    auto it = st.waiting.find(g.ticket);
    if (it == st.waiting.end()) {  // nobody waits for it any more
      st.scheduler->release(kJob, g.allocations.front());
      continue;
    }
    grant(self, it->second, g.allocations.front());
    st.waiting.erase(it);
  }
}

// A reservation ended: leases waiting for it fail (work already running inside it finishes).
void reservation_gone(Self* self, std::uint64_t t, const std::string& how) {
  auto& st = self->state;
  for (auto it = st.waiting.begin(); it != st.waiting.end();) {
    if (it->second.request.reservation != t) {
      ++it;
      continue;
    }
    st.scheduler->cancel(it->first);
    it->second.client->lease_failed(std::make_shared<const detail::ErrorInfo>(detail::ErrorInfo{
        detail::ErrorKind::infeasible, "", "", "iogrid: cluster " + reservation_name(t) + " was " + how}));
    it = st.waiting.erase(it);
  }
}

caf::behavior head_actor(Self* self, std::shared_ptr<sched::Scheduler> scheduler) {
  auto& st = self->state;
  st.scheduler = std::move(scheduler);
  st.reservations = std::make_unique<ReservationBook>(*st.scheduler, st.ledger);
  self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);  // reservation expiry
  return {
      [=](nodes_atom, std::vector<caf::actor> nodes) { self->state.nodes = std::move(nodes); },
      [=](lease_atom, LeaseRequest req) {
        auto& st = self->state;
        std::string why;
        if (!st.scheduler->feasible(req.request, &why)) {
          ++st.stats.leases_infeasible;
          req.client->lease_failed(std::make_shared<const detail::ErrorInfo>(
              detail::ErrorInfo{detail::ErrorKind::infeasible, "", "", "iogrid: " + why}));
          return;
        }
        auto d = st.scheduler->submit_or_place(kJob, req.request, req.request.priority);
        if (const auto* mine = d.mine(); mine && d.grants.size() == 1) {  // the common case: granted at once
          grant(self, req, mine->allocations.front());
          return;
        }
        if (!d.mine()) ++st.stats.leases_queued;
        st.waiting.emplace(d.ticket, std::move(req));
        hand_out(self, std::move(d.grants));
      },
      [=](release_atom, sched::Allocation alloc) {
        auto& st = self->state;
        charge(st, alloc);
        st.scheduler->release(kJob, alloc);
        hand_out(self, st.scheduler->schedule_freed(alloc.node));
      },
      // A worker parked in get/wait lends its CPUs out (its GPUs stay held), as Ray does; on resuming it
      // takes them back even if that briefly over-commits the node.
      [=](worker::blocked_atom, const sched::Allocation& alloc) {
        auto& cluster = self->state.scheduler->cluster();
        if (alloc.node >= cluster.size()) return;
        cluster.adjust_cpus(alloc.node, alloc.cpus);
        hand_out(self, self->state.scheduler->schedule_freed(alloc.node));
      },
      [=](worker::unblocked_atom, const sched::Allocation& alloc) {
        auto& cluster = self->state.scheduler->cluster();
        if (alloc.node < cluster.size()) cluster.adjust_cpus(alloc.node, -alloc.cpus);
      },
      [=](view_atom) { return self->state.scheduler->cluster().view(); },
      [=](admin_atom, const std::string& command, const std::string& args) -> std::tuple<bool, std::string> {
        auto& st = self->state;
        for (auto t : st.reservations->expire()) reservation_gone(self, t, "expired");
        try {
          auto json = nlohmann::json::parse(args.empty() ? "{}" : args);
          auto body = st.reservations->admin(command, json, kJob);
          if (command == "cluster.delete") {
            reservation_gone(self, parse_reservation(json.value("id", "")), "deleted");
            hand_out(self, st.scheduler->schedule());
          }
          return {true, body.dump()};
        } catch (const std::exception& e) {
          return {false, e.what()};
        }
      },
      [=](tick_atom) {
        auto expired = self->state.reservations->expire();
        for (auto t : expired) reservation_gone(self, t, "expired");
        // A full pass now and then: capacity that came back without a release (an expired cluster) is used.
        if (!self->state.waiting.empty()) hand_out(self, self->state.scheduler->schedule());
        self->delayed_send(self, std::chrono::seconds(1), tick_atom::value);
      },
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
  auto scheduler = std::make_shared<sched::Scheduler>(std::move(policy));
  for (auto& n : view.nodes) scheduler->cluster().add(std::move(n));
  scheduler->node_changed();
  return sys.spawn(head_actor, std::move(scheduler));
}

}  // namespace iogrid::runtime
