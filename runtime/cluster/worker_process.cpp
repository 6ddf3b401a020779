// The worker process: started by a node from the job's executable; iogrid::init() lands here.
// It connects to its node and serves the leases the node gives it (every lease of its job on that node, at
// once): for each it connects to the lease's owner and runs the tasks the owner pushes, one at a time in
// arrival order, on a worker thread of that lease (user code never runs on the network thread). The owner ends
// a lease with EndLease; the worker then reports it done to its node. If the node goes away the process exits;
// if the owner of a lease goes away, that lease ends (its work belongs to no one any more) and the rest go on.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <future>
#include <mutex>

#include "iogrid/core/core.hpp"
#include "iogrid/core/spin.hpp"
#include "iogrid/core/errors.hpp"
#include "runtime/cluster/cluster_client.hpp"
#include "runtime/export_table.hpp"
#include "runtime/cluster/wire_task.hpp"
#include "runtime/cluster/worker_env.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/endpoint.hpp"
#include "runtime/transport/punch.hpp"
#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/tcp.hpp"
#include "runtime/transport/tls.hpp"
#include "worker/worker_thread.hpp"

namespace iogrid::runtime::cluster {

namespace {

// A lease's owner the head was still checking: how long its own address is tried before the relay.
constexpr std::chrono::milliseconds kOwnerDirectTimeout{1500};


using transport::ConnId;
using transport::Endpoint;
using transport::Peer;

// The Core user code sees inside a worker process. Objects it puts stay local; the first task or actor it
// submits makes this process an owner of its own (a cluster client registered under the same job), which then
// serves every further call, so nested task graphs run across the cluster as they do in embedded mode.
class WorkerProcessCore final : public core::Core {
 public:
  core::RefHandle new_entry() override {
    if (auto* c = nested_if_started()) return c->new_entry();
    return core::RefHandle::adopt(new core::ObjectEntry(next_id_.fetch_add(1, std::memory_order_relaxed)));
  }
  void submit(std::unique_ptr<core::TaskSpec> spec, const core::TaskOptions& opts) override {
    nested().submit(std::move(spec), opts);
  }
  core::RefHandle put(core::MutableBufferPtr value, std::vector<std::shared_ptr<void>> contained) override {
    if (auto* c = nested_if_started()) return c->put(std::move(value), std::move(contained));
    auto h = new_entry();
    auto size = value->size();
    h->complete_value(std::move(value), nullptr, size, std::move(contained));
    return h;
  }
  void cancel(core::ObjectEntry* e) override {
    if (auto* c = nested_if_started()) c->cancel(e);
  }
  std::shared_ptr<void> export_ref(core::ObjectEntry* e) override { return process_export_table().export_ref(e); }
  core::RefHandle import_ref(std::uint64_t id) override { return process_export_table().import_ref(id); }
  std::shared_ptr<void> create_actor(std::unique_ptr<core::TaskSpec> ctor, const core::ActorOptions& opts) override {
    return nested().create_actor(std::move(ctor), opts);
  }
  void submit_actor_call(const std::shared_ptr<void>& actor, std::unique_ptr<core::TaskSpec> spec) override {
    nested().submit_actor_call(actor, std::move(spec));
  }
  void kill_actor(const std::shared_ptr<void>& actor, bool no_restart) override { nested().kill_actor(actor, no_restart); }
  std::string current_node() const override {
    const auto* ctx = worker::current_context();
    return ctx ? ctx->node_name : std::string("driver");
  }

  // A task of a lease holding `lease_cpus` waits for `e`: when its producer is a task this process submitted
  // that has not started anywhere, and it is plain CPU work that fits the lease (no GPUs, custom resources,
  // labels, node, reservation or trust constraints), run it here on the waiting thread.
  bool run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx, sched::Milli lease_cpus) {
    auto* c = nested_if_started();
    if (!c) return false;
    return static_cast<SubmitterCore*>(c)->run_inline(e, ctx, [lease_cpus](const sched::ResourceRequest& r) {
      return r.gpus == 0 && r.custom.empty() && r.labels.empty() && r.node.empty() && r.avoid_nodes.empty() && r.reservation == 0 &&
             r.min_reputation == 0 && r.memory_mib == 0 && r.cpus <= lease_cpus;
    });
  }

  // The cluster client of this process (connected on first use): nested tasks, the KV store, cluster queries.
  SubmitterCore& client() {
    (void)nested();
    return *nested_;
  }

  void configure(std::string head, std::string token, std::string job) {
    head_ = std::move(head);
    token_ = std::move(token);
    job_ = std::move(job);
  }

 private:
  core::Core* nested_if_started() { return started_.load(std::memory_order_acquire) ? nested_.get() : nullptr; }
  core::Core& nested() {
    if (auto* c = nested_if_started()) return *c;
    std::lock_guard<std::mutex> g(m_);
    if (!nested_) {
      if (head_.empty()) throw core::Error("iogrid: this worker process does not know its head; nested tasks are unavailable");
      ClientOptions o;
      o.address = head_;
      o.token = token_;
      o.parent_job = job_;
      nested_ = connect_cluster(o);
      started_.store(true, std::memory_order_release);
    }
    return *nested_;
  }
  std::atomic<std::uint64_t> next_id_{fresh_id_base()};  // unique across processes (refs travel in values)
  std::mutex m_;
  std::unique_ptr<SubmitterCore> nested_;
  std::atomic<bool> started_{false};
  std::string head_, token_, job_;
};

std::atomic<WorkerProcessCore*> g_worker_core{nullptr};

// The tasks of the lease being served, in arrival order.
class LeaseQueue final : public worker::WorkSource {
 public:
  // Stores a large value with the node; returns where it can be pulled from.
  using StoreLarge = std::function<Location(const core::Buffer&)>;
  LeaseQueue(caf::actor ep, ConnId owner, StoreLarge store, sched::Milli cpus)
      : ep_(std::move(ep)), owner_(owner), store_(std::move(store)), cpus_(cpus) {}

  void push(std::unique_ptr<RemoteSpec> s) {
    {
      std::lock_guard<std::mutex> g(m_);
      q_.push_back(s.release());
      size_.store(q_.size(), std::memory_order_release);
    }
    cv_.notify_one();
  }
  void end() {
    {
      std::lock_guard<std::mutex> g(m_);
      ended_ = true;
    }
    ended_flag_.store(true, std::memory_order_release);
    cv_.notify_one();
  }
  // The owner is gone: what it queued is dropped (no one can take the results), the task running finishes.
  void abandon() {
    std::deque<RemoteSpec*> dropped;
    {
      std::lock_guard<std::mutex> g(m_);
      dropped.swap(q_);
      size_.store(0, std::memory_order_release);
      ended_ = true;
    }
    ended_flag_.store(true, std::memory_order_release);
    cv_.notify_one();
    for (auto* d : dropped) delete d;
  }

  core::TaskSpec* next(const worker::WorkerContext& ctx) override {
    for (;;) {
      core::spin_for([this] { return size_.load(std::memory_order_acquire) > 0 || ended_flag_.load(std::memory_order_acquire); },
                       core::kWorkerSpin);
      RemoteSpec* s = nullptr;
      {
        std::unique_lock<std::mutex> g(m_);
        cv_.wait(g, [this] { return !q_.empty() || ended_; });
        if (q_.empty()) return nullptr;
        s = q_.front();
        q_.pop_front();
        size_.store(q_.size(), std::memory_order_release);
      }
      if (s->kind != core::TaskKind::normal) actor_lease_ = true;
      // What cannot run here fails right away, with the reason.
      worker::Outcome failed;
      failed.failed = true;
      if (!s->fn) {
        failed.error = "iogrid: function '" + s->missing_function + "' is not registered in this executable";
      } else {
        Location where;
        try {
          fetch_remote_deps(*s, &where);
          return s;
        } catch (const std::exception& e) {
          failed.error = std::string("iogrid: could not fetch an argument: ") + e.what();
          s->lost_dep = where;  // the owner rebuilds it and sends the task again
        }
      }
      finish(s, std::move(failed), ctx);
    }
  }
  void* self() override { return instance_; }

  // A task lease's waiting task runs its own queued children inline (WorkerProcessCore::run_inline); an actor's
  // thread never does (it holds the actor's resources, not the child's).
  bool run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx) override {
    if (actor_lease_) return false;
    auto* core = g_worker_core.load(std::memory_order_acquire);
    return core && core->run_inline(e, ctx, cpus_);
  }

  void finish(core::TaskSpec* spec, worker::Outcome&& out, const worker::WorkerContext&) override {
    auto* rs = static_cast<RemoteSpec*>(spec);
    if (rs->kind == core::TaskKind::actor_create && !out.failed) {
      instance_ = out.instance;
      ctor_fn_ = rs->fn;
    }
    // Refs inside the result travel with it (their owner becomes the result's owner): wait for them first.
    for (const auto& t : out.contained)
      core::wait_done(static_cast<core::ObjectEntry*>(t.get()), std::chrono::steady_clock::time_point::max());
    std::optional<Location> where;
    if (!out.failed && out.value && out.value->size() > core::kMaxInlineValueBytes) {
      try {
        where = store_(*out.value);
      } catch (const std::exception& e) {
        out.failed = true;
        out.error = std::string("iogrid: could not store the result on its node: ") + e.what();
      }
    }
    capnp::MallocMessageBuilder msg;
    auto results = msg.initRoot<proto::Envelope>().initResults().initResults(1);
    write_result(results[0], rs->task_id, out, where ? &*where : nullptr, rs->lost_dep ? &*rs->lost_dep : nullptr);
    transport::post_frame(ep_, owner_, transport::encode_frame(msg));
    delete rs;
  }

  void lease_ended(const worker::WorkerContext&) override {
    if (instance_ && ctor_fn_) ctor_fn_->destroy(instance_);
    instance_ = nullptr;
  }

 private:
  caf::actor ep_;
  ConnId owner_;
  StoreLarge store_;
  const sched::Milli cpus_;
  std::atomic<bool> actor_lease_{false};
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<RemoteSpec*> q_;
  std::atomic<std::size_t> size_{0};
  bool ended_ = false;
  std::atomic<bool> ended_flag_{false};
  void* instance_ = nullptr;
  const core::FunctionInfo* ctor_fn_ = nullptr;
};

// The worker process's side of the network: its node and the owners of the leases it serves. A process serves
// every lease its node gives it for its job at once, each on a worker thread of its own (a task parked in get
// lends its lease's CPUs, and the lease granted meanwhile becomes another thread here, not another process),
// each over its own connection to the lease's owner (a connection idle between leases is reused).
class WorkerService final : public transport::Service {
 public:
  WorkerService(std::string node_host, std::uint16_t node_port, std::string token)
      : node_host_(std::move(node_host)), node_port_(node_port), token_(std::move(token)) {}

  void on_start(Endpoint& ep) override {
    self_ = ep.handle();
    try {
      node_ = ep.connect(node_host_, node_port_, proto::Role::WORKER);
    } catch (const std::exception& e) {
      spdlog::error("worker {}: {}", ::getpid(), e.what());
      std::_Exit(1);
    }
  }

  void on_peer(Endpoint& ep, Peer& p) override {
    for (auto& [id, slot] : slots_)
      if (slot.owner == p.id && !slot.attached) attach(ep, slot);
  }

  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    using W = proto::Envelope::Which;
    if (p.id == node_ && msg.which() == W::SERVE_LEASE) return serve(ep, msg.getServeLease());
    if (p.id == node_ && msg.which() == W::USE_RELAY) {
      // The operator's relay this node used is gone: pulls from holders that cannot be dialled go to the new one.
      auto u = msg.getUseRelay();
      if (auto client = transport::process_data_client()) client->set_relay(u.getHost(), u.getPort());
      return;
    }
    if (p.id == node_ && msg.which() == W::OBJECT_STORED) {
      auto r = msg.getObjectStored();
      std::lock_guard<std::mutex> g(store_m_);
      auto it = store_waiters_.find(r.getRequestId());
      if (it == store_waiters_.end()) return;
      if (r.getError().size()) it->second->set_exception(std::make_exception_ptr(core::Error(r.getError())));
      else it->second->set_value(r.getKey());
      store_waiters_.erase(it);
      return;
    }
    if (auto* slot = slot_of(p.id)) {
      if (msg.which() == W::TASKS) {
        for (auto t : msg.getTasks().getTasks()) slot->queue->push(read_task(t));
        return;
      }
      if (msg.which() == W::END_LEASE) {
        slot->queue->end();
        return;
      }
    }
    spdlog::warn("worker {}: closing connection to '{}': unexpected message", ::getpid(), p.name);
    ep.close(p.id, "unexpected message");
  }

  void on_closed(Endpoint& ep, Peer& p, const std::string& why) override {
    // Our node is gone: so is everything this process serves.
    if (p.id == node_) std::_Exit(0);
    // The owner of a lease is gone (a worker process owning nested tasks, on a node that died): that lease's
    // queued tasks are dropped and its running task finishes unheard; the process's other leases go on.
    if (auto* slot = slot_of(p.id)) {
      slot->queue->abandon();
      slot->owner = 0;
    }
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [&](const OwnerConn& c) { return c.id == p.id; }),
                 conns_.end());
  }

 private:
  struct Slot {
    std::uint64_t global = 0, owner_lease = 0;
    ConnId owner = 0;
    bool attached = false;
    std::shared_ptr<LeaseQueue> queue;
    worker::WorkerThread* thread = nullptr;
  };
  struct OwnerConn {
    std::string host;
    std::uint16_t port = 0;
    ConnId id = 0;
    bool busy = false;  // carries a lease now
  };

  Slot* slot_of(ConnId conn) {
    for (auto& [id, slot] : slots_)
      if (slot.owner == conn) return &slot;
    return nullptr;
  }

  void attach(Endpoint& ep, Slot& slot) {
    capnp::MallocMessageBuilder msg;
    auto a = msg.initRoot<proto::Envelope>().initAttach();
    a.setLeaseId(slot.owner_lease);
    a.setNodeName(node_name_);
    a.setNodeIndex(node_index_);
    a.setPid(::getpid());
    ep.send(slot.owner, msg);
    slot.attached = true;
  }

  void serve(Endpoint& ep, proto::ServeLease::Reader s) {
    const auto global = s.getGlobalLeaseId();
    if (slots_.count(global)) return;
    if (job_.empty()) {  // the same for every lease of this process; set once, before any worker thread reads them
      node_name_ = s.getNodeName();
      node_index_ = s.getNodeIndex();
      data_host_ = s.getDataHost();
      data_port_ = s.getDataPort();
      job_ = s.getJobId();
      // Objects whose holder cannot be dialled are pulled through the head's relay.
      if (s.getRelayPort())
        if (auto client = transport::process_data_client()) client->set_relay(s.getRelayHost(), s.getRelayPort());
    }
    const std::string host = s.getOwnerHost();
    const auto port = s.getOwnerPort();
    // The lease's owner: a connection idle between leases if there is one to it; idle ones to other owners go
    // (taken out of the list before they are closed: closing calls on_closed, which edits the list too).
    std::vector<ConnId> stale;
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (!it->busy && (it->host != host || it->port != port)) {
        stale.push_back(it->id);
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto id : stale) ep.close(id, "new owner");
    ConnId owner = 0;
    for (auto& c : conns_)
      if (!c.busy) {
        c.busy = true;
        owner = c.id;
        break;
      }
    const bool connected = owner != 0;
    if (!connected) {
      OwnerConn c;
      c.host = host;
      c.port = port;
      c.busy = true;
      try {
        // Through the head's relay when the owner cannot be dialled (relay_hello.hpp), trying a hole punch
        // first (transport/punch.hpp: a few ms when it works, its window when it does not, once per owner).
        const std::string relay = s.getRelayTarget();
        // The head had not finished dialling the owner back: its own address first, briefly.
        int direct = -1;
        if (!relay.empty() && s.getDirectPort()) {
          std::string error;
          direct = transport::dial_tcp(s.getDirectHost(), s.getDirectPort(), kOwnerDirectTimeout, &error);
          if (direct >= 0)
            spdlog::info("worker {}: reached the job's owner directly at {}:{}", ::getpid(), std::string(s.getDirectHost()), s.getDirectPort());
        }
        if (direct >= 0) {
          c.id = ep.adopt(direct, s.getDirectHost(), true, proto::Role::WORKER);
        } else if (relay.empty()) {
          c.id = ep.connect(host, port, proto::Role::WORKER);
        } else {
          spdlog::info("worker {}: reaching the job's owner through the relay at {}:{} as '{}'", ::getpid(), host, port, relay);
          const bool punch = !no_punch_.count(relay);
          auto link = transport::relay_connect(host, port, relay, token_, punch, std::chrono::seconds(5));
          if (link.fd < 0) throw core::Error("the relay at " + host + ":" + std::to_string(port) + ": " + link.error);
          if (link.tried && !link.punched) no_punch_.insert(relay);
          spdlog::info("worker {}: the job's owner ('{}') is {}", ::getpid(), relay,
                       link.punched ? "connected directly (hole punched)"
                                    : link.tried ? "reached through the relay (the hole punch did not connect)"
                                                 : "reached through the relay");
          c.id = ep.adopt(link.fd, host, true, proto::Role::WORKER);
        }
      } catch (const std::exception& e) {
        spdlog::error("worker {}: cannot reach the job's owner: {}", ::getpid(), e.what());
        std::_Exit(1);
      }
      owner = c.id;
      conns_.push_back(c);
    }
    auto& slot = slots_[global];
    slot.global = global;
    slot.owner_lease = s.getOwnerLeaseId();
    slot.owner = owner;
    slot.queue = std::make_shared<LeaseQueue>(self_, slot.owner, store_large(), s.getCpusMilli());
    std::vector<std::pair<std::uint32_t, double>> gpus;
    auto devices = s.getGpuDevices();
    auto fractions = s.getGpuFractions();
    for (unsigned i = 0; i < devices.size(); ++i)
      gpus.emplace_back(devices[i], i < fractions.size() ? double(fractions[i]) / 1000.0 : 1.0);
    start_thread(slot, std::move(gpus));
    if (connected) attach(ep, slot);  // else after the handshake (on_peer)
  }

  // Runs on a worker thread: hands a large value to the node and waits until it is stored there.
  LeaseQueue::StoreLarge store_large() {
    return [this](const core::Buffer& value) {
      auto id = ++store_counter_;
      auto path = object_file_prefix() + std::to_string(::getpid()) + "-" + std::to_string(id);
      {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(value.data()), static_cast<std::streamsize>(value.size()));
        if (!out) throw core::Error("cannot write " + path);
      }
      auto p = std::make_shared<std::promise<std::uint64_t>>();
      auto f = p->get_future();
      {
        std::lock_guard<std::mutex> g(store_m_);
        store_waiters_[id] = p;
      }
      auto size = value.size();
      auto job = job_;
      transport::post(self_, [this, id, path, size, job](Endpoint& e) {
        capnp::MallocMessageBuilder msg;
        auto r = msg.initRoot<proto::Envelope>().initStoreObject();
        r.setRequestId(id);
        r.setPath(path);
        r.setSize(size);
        r.setJobId(job);
        e.send(node_, msg);
      });
      if (f.wait_for(std::chrono::seconds(120)) != std::future_status::ready) throw core::Error("the node did not store the object in time");
      return Location{data_host_, data_port_, f.get(), size, node_index_, transport::data_node_relay_name(node_index_)};
    };
  }

  void start_thread(Slot& slot, std::vector<std::pair<std::uint32_t, double>> gpus) {
    if (idle_threads_.empty()) {
      worker::WorkerContext ctx;
      ctx.node_name = node_name_;
      ctx.node_index = node_index_;
      ctx.worker_id = static_cast<std::uint64_t>(::getpid()) * 1000 + threads_.size();
      threads_.push_back(std::make_unique<worker::WorkerThread>(ctx));
      idle_threads_.push_back(threads_.back().get());
    }
    slot.thread = idle_threads_.back();
    idle_threads_.pop_back();
    auto self = self_;
    auto node = node_;
    auto global = slot.global;
    worker::WorkerThread::Hooks hooks;
    hooks.gpus = std::move(gpus);
    // A task parked in get/wait lends its CPUs out through the node and the head.
    auto blocked = [self, node, global](bool b) {
      transport::post(self, [node, global, b](Endpoint& e) {
        capnp::MallocMessageBuilder msg;
        auto lb = msg.initRoot<proto::Envelope>().initLeaseBlocked();
        lb.setLeaseId(global);
        lb.setBlocked(b);
        e.send(node, msg);
      });
    };
    hooks.on_block = [blocked] { blocked(true); };
    hooks.on_unblock = [blocked] { blocked(false); };
    // Runs on the worker thread once the lease has run dry: the thread and the owner's connection are free again.
    hooks.on_end = [self, node, global, this] {
      transport::post(self, [this, node, global](Endpoint& e) {
        auto it = slots_.find(global);
        if (it == slots_.end()) return;
        for (auto& c : conns_)
          if (c.id == it->second.owner) c.busy = false;
        idle_threads_.push_back(it->second.thread);
        slots_.erase(it);
        capnp::MallocMessageBuilder msg;
        msg.initRoot<proto::Envelope>().initLeaseDone().setLeaseId(global);
        e.send(node, msg);
      });
    };
    slot.thread->serve(slot.queue, std::move(hooks));
  }

  std::string node_host_;
  std::uint16_t node_port_;
  std::string token_;  // the cluster token (signs a relay's first line)
  std::set<std::string> no_punch_;  // owners (by relay name) a hole punch failed for: relayed without trying again
  caf::actor self_;
  ConnId node_ = 0;
  std::string node_name_;
  std::uint32_t node_index_ = 0;
  std::map<std::uint64_t, Slot> slots_;  // by the head's lease id
  std::vector<OwnerConn> conns_;
  std::vector<std::unique_ptr<worker::WorkerThread>> threads_;
  std::vector<worker::WorkerThread*> idle_threads_;
  std::string data_host_, job_;
  std::uint16_t data_port_ = 0;
  std::atomic<std::uint64_t> store_counter_{0};
  std::mutex store_m_;
  std::unordered_map<std::uint64_t, std::shared_ptr<std::promise<std::uint64_t>>> store_waiters_;
};

}  // namespace

SubmitterCore* worker_process_client() {
  auto* c = g_worker_core.load(std::memory_order_acquire);
  return c ? &c->client() : nullptr;
}

void run_worker_process() {
  spdlog::set_pattern("[%H:%M:%S.%e] [worker %P] [%l] %v");
  const char* node = std::getenv(kWorkerEndpointEnv);
  const char* token = std::getenv(kWorkerTokenEnv);
  if (!node || !token) {
    spdlog::error("worker mode needs {} and {}", kWorkerEndpointEnv, kWorkerTokenEnv);
    std::_Exit(2);
  }
  auto [host, port] = transport::parse_address(node);
  static WorkerProcessCore core;
  const char* head = std::getenv(kWorkerHeadEnv);
  const char* job = std::getenv(kWorkerJobEnv);
  core.configure(head ? head : "", token, job ? job : "");
  core::install(&core);
  g_worker_core.store(&core, std::memory_order_release);
  std::shared_ptr<ssl_ctx_st> tls;
  try {
    tls = transport::make_tls_context(transport::tls_from_env());
  } catch (const std::exception& e) {
    spdlog::error("worker {}: {}", ::getpid(), e.what());
    std::_Exit(1);
  }
  transport::set_process_data_client(std::make_shared<transport::DataClient>(token, tls));
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", 1);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  auto* sys = new caf::actor_system(cfg);  // lives until the process exits
  transport::EndpointConfig ec;
  ec.token = token;
  ec.name = std::to_string(::getpid());
  ec.tls = tls;
  auto svc = std::make_shared<WorkerService>(host, port, token);
  transport::spawn_endpoint(*sys, svc, ec);
  for (;;) ::pause();
}

}  // namespace iogrid::runtime::cluster
