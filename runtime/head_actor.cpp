#include "runtime/head_actor.hpp"

#include <unordered_map>

#include "iogrid/core/errors.hpp"
#include "runtime/cluster/status_json.hpp"
#include "runtime/head/head_core.hpp"
#include "runtime/messages.hpp"

namespace iogrid::runtime {

namespace {

// The one driver of an embedded cluster, as the head core knows it.
constexpr head::OwnerId kDriver = 1;

// What the core asks, delivered as actor messages: grants go to the node actors, refusals to the lease
// client that asked. Runs on the head actor's thread (inside a call into the core).
class Shell final : public head::IgnoreHeadEvents {
 public:
  explicit Shell(caf::event_based_actor* self) : self_(self) {}

  // Hands a request to the core: most are granted (or refused) during the call, without a table entry.
  void ask(head::HeadCore& core, LeaseRequest req) {
    const auto id = next_++;
    asking_id_ = id;
    asking_ = &req;
    core.request_lease(kDriver, id, req.request);
    asking_ = nullptr;
    if (req.client) waiting_.emplace(id, std::move(req));  // queued: answered later
  }
  std::vector<caf::actor> nodes;

  void start_lease(std::uint32_t node, const head::LeaseGrant& g) override {
    auto req = take(g.owner_lease);
    if (!req.client) return;
    req.client->lease_granted();
    if (node < nodes.size()) self_->send(nodes[node], start_atom::value, std::move(req.source), g.alloc);
  }
  void refuse_lease(head::OwnerId, std::uint64_t owner_lease, const std::string& reason, head::LeaseRefusal why) override {
    auto req = take(owner_lease);
    if (!req.client) return;  // granted before (a lease that ended): nothing waits for it
    const auto kind = why == head::LeaseRefusal::never_fits ? core::ErrorKind::infeasible : core::ErrorKind::task_failed;
    req.client->lease_failed(std::make_shared<const core::ErrorInfo>(core::ErrorInfo{kind, "", "", reason}));
  }
  // The rest is ignored (IgnoreHeadEvents): one process, one job, so no job is owed another's leases; nodes never
  // die, the job ends with the process, nothing to verify or answer later.

 private:
  // The request answered now: the one being asked, or one that waited (empty client: none).
  LeaseRequest take(std::uint64_t id) {
    if (asking_ && id == asking_id_) return std::move(*asking_);
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return {};
    auto req = std::move(it->second);
    waiting_.erase(it);
    return req;
  }

  caf::event_based_actor* self_;
  std::unordered_map<std::uint64_t, LeaseRequest> waiting_;  // queued requests, by their owner_lease id
  LeaseRequest* asking_ = nullptr;                           // the request inside request_lease()
  std::uint64_t asking_id_ = 0;
  std::uint64_t next_ = 1;
};

struct HeadState {
  std::unique_ptr<Shell> shell;
  std::unique_ptr<head::HeadCore> core;
  static inline const char* name = "iogrid.head";
};

using Self = caf::stateful_actor<HeadState>;

caf::behavior head_actor(Self* self, sched::ClusterView view, std::string policy, std::shared_ptr<head::History> history) {
  auto& st = self->state;
  st.shell = std::make_unique<Shell>(self);
  head::HeadConfig config;
  config.policy = std::move(policy);
  config.announce = false;  // the user's program prints what it wants
  config.history_store = std::move(history);
  st.core = std::make_unique<head::HeadCore>(config, *st.shell);
  for (auto& n : view.nodes) {
    head::Join j;
    j.node = std::move(n);
    j.host = "127.0.0.1";
    j.liveness = head::Liveness::in_process;
    st.core->join(std::move(j));
  }
  head::Registration driver;
  driver.driver = "driver@embedded";
  if (auto r = st.core->register_owner(kDriver, driver); !r.ok) throw core::Error("iogrid: " + r.error);
  self->delayed_send(self, std::chrono::milliseconds(100), tick_atom::value);
  return {
      [=](nodes_atom, std::vector<caf::actor> nodes) {
        self->state.shell->nodes = std::move(nodes);
        for (std::uint32_t i = 0; i < self->state.shell->nodes.size(); ++i) self->state.core->admit(i);
      },
      [=](lease_atom, LeaseRequest req) { self->state.shell->ask(*self->state.core, std::move(req)); },
      [=](release_atom, const sched::Allocation& alloc) { self->state.core->lease_ended(alloc.lease); },
      // A worker parked in get/wait lends its CPUs out (its GPUs stay held), as Ray does.
      [=](worker::blocked_atom, const sched::Allocation& alloc) { self->state.core->worker_blocked(alloc.lease); },
      [=](worker::unblocked_atom, const sched::Allocation& alloc) { self->state.core->worker_resumed(alloc.lease); },
      [=](view_atom) { return self->state.core->scheduler().cluster().view(); },
      [=](admin_atom, const std::string& command, const std::string& args) -> std::tuple<bool, std::string> {
        try {
          auto body = self->state.core->admin(kDriver, 0, "driver", command, args);
          if (!body) return {false, "iogrid: " + command + " needs a cluster (iogrid head and iogrid node)"};
          return {true, *body};
        } catch (const std::exception& e) {
          return {false, e.what()};
        }
      },
      [=](task_report_atom, const std::string& json) { self->state.core->task_report(kDriver, json); },
      [=](ui_admin_atom, const std::string& command, const std::string& args,
          const std::string& who) -> std::tuple<bool, std::string> {
        if (command == "verify") return {false, "iogrid: verify needs a cluster (iogrid head and iogrid node)"};
        try {
          return {true, self->state.core->admin(0, 0, who, command, args).value_or("{}")};
        } catch (const std::exception& e) {
          return {false, e.what()};
        }
      },
      [=](tick_atom) {
        self->state.core->tick();
        self->delayed_send(self, std::chrono::milliseconds(100), tick_atom::value);
      },
      [=](stats_atom) { return self->state.core->stats(); },
      [=](status_atom) { return cluster::head_status_document(*self->state.core, "embedded"); },
      [=](kv_put_atom, const std::string& k, const std::string& v) { self->state.core->kv_put(k, v); },
      // Answers an empty list when the key is missing, else one value.
      [=](kv_get_atom, const std::string& k) -> std::vector<std::string> {
        auto v = self->state.core->kv_get(k);
        if (!v) return {};
        return {*v};
      },
  };
}

}  // namespace

caf::actor spawn_head(caf::actor_system& sys, sched::ClusterView view, const std::string& policy,
                      std::shared_ptr<head::History> history) {
  return sys.spawn(head_actor, std::move(view), policy, std::move(history));
}

}  // namespace iogrid::runtime
