// The worker process: started by a node from the job's executable; iogrid::init() lands here.
// It connects to its node, waits for a lease, connects to the lease's owner and runs the tasks the owner
// pushes, one at a time in arrival order, on a worker thread (user code never runs on the network thread).
// The owner ends the lease with EndLease; the worker then reports to its node and waits for the next lease.
// If the node or the owner goes away the process exits: its work belongs to no one any more.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
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
#include "runtime/transport/tls.hpp"
#include "worker/worker_thread.hpp"

namespace iogrid::runtime::cluster {

namespace {

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
      return r.gpus == 0 && r.custom.empty() && r.labels.empty() && r.node.empty() && r.reservation == 0 &&
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

class WorkerService final : public transport::Service {
 public:
  WorkerService(std::string node_host, std::uint16_t node_port) : node_host_(std::move(node_host)), node_port_(node_port) {}

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
    if (p.id == owner_ && lease_) {
      capnp::MallocMessageBuilder msg;
      auto a = msg.initRoot<proto::Envelope>().initAttach();
      a.setLeaseId(owner_lease_);
      a.setNodeName(ctx_.node_name);
      a.setNodeIndex(ctx_.node_index);
      a.setPid(::getpid());
      ep.send(p.id, msg);
    }
  }

  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    using W = proto::Envelope::Which;
    if (p.id == node_ && msg.which() == W::SERVE_LEASE) return serve(ep, msg.getServeLease());
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
    if (p.id == owner_ && lease_) {
      if (msg.which() == W::TASKS) {
        for (auto t : msg.getTasks().getTasks()) lease_->push(read_task(t));
        return;
      }
      if (msg.which() == W::END_LEASE) {
        lease_->end();
        return;
      }
    }
    spdlog::warn("worker {}: closing connection to '{}': unexpected message", ::getpid(), p.name);
    ep.close(p.id, "unexpected message");
  }

  void on_closed(Endpoint& ep, Peer& p, const std::string& why) override {
    if (p.id == node_ || p.id == owner_) {
      // Our node or our owner is gone: nothing we run can be delivered any more.
      std::_Exit(0);
    }
  }

 private:
  void serve(Endpoint& ep, proto::ServeLease::Reader s) {
    if (lease_) return ep.close(node_, "lease while serving another");
    owner_lease_ = s.getOwnerLeaseId();
    global_lease_ = s.getGlobalLeaseId();
    ctx_.node_name = s.getNodeName();
    ctx_.node_index = s.getNodeIndex();
    ctx_.worker_id = static_cast<std::uint64_t>(::getpid());
    ctx_.gpus.clear();
    auto devices = s.getGpuDevices();
    auto fractions = s.getGpuFractions();
    for (unsigned i = 0; i < devices.size(); ++i)
      ctx_.gpus.emplace_back(devices[i], i < fractions.size() ? double(fractions[i]) / 1000.0 : 1.0);
    cpus_ = s.getCpusMilli();
    data_host_ = s.getDataHost();
    data_port_ = s.getDataPort();
    job_ = s.getJobId();
    std::string host = s.getOwnerHost();
    auto port = s.getOwnerPort();
    if (!owner_ || host != owner_host_ || port != owner_port_) {
      if (owner_) ep.close(owner_, "new owner");
      owner_host_ = host;
      owner_port_ = port;
      try {
        owner_ = ep.connect(host, port, proto::Role::WORKER);
      } catch (const std::exception& e) {
        spdlog::error("worker {}: cannot reach the job's owner: {}", ::getpid(), e.what());
        std::_Exit(1);
      }
      lease_ = std::make_shared<LeaseQueue>(self_, owner_, store_large(), cpus_);
      start_thread(ep);
      return;  // Attach follows the handshake (on_peer)
    }
    lease_ = std::make_shared<LeaseQueue>(self_, owner_, store_large(), cpus_);
    start_thread(ep);
    on_peer(ep, *ep.peer(owner_));
  }

  // Runs on the worker thread: hands a large value to the node and waits until it is stored there.
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
      return Location{data_host_, data_port_, f.get(), size, ctx_.node_index};
    };
  }

  void start_thread(Endpoint& ep) {
    if (!thread_) thread_ = std::make_unique<worker::WorkerThread>(ctx_);
    auto self = self_;
    auto node = node_;
    auto global = global_lease_;
    worker::WorkerThread::Hooks hooks;
    hooks.gpus = ctx_.gpus;
    // Runs on the worker thread once the lease has run dry.
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
    hooks.on_end = [self, node, global, this] {
      transport::post(self, [this, node, global](Endpoint& e) {
        lease_.reset();
        capnp::MallocMessageBuilder msg;
        msg.initRoot<proto::Envelope>().initLeaseDone().setLeaseId(global);
        e.send(node, msg);
      });
    };
    thread_->serve(lease_, std::move(hooks));
  }

  std::string node_host_;
  std::uint16_t node_port_;
  caf::actor self_;
  ConnId node_ = 0, owner_ = 0;
  std::string owner_host_;
  std::uint16_t owner_port_ = 0;
  std::uint64_t owner_lease_ = 0, global_lease_ = 0;
  sched::Milli cpus_ = 0;
  worker::WorkerContext ctx_;
  std::shared_ptr<LeaseQueue> lease_;
  std::unique_ptr<worker::WorkerThread> thread_;
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
  auto svc = std::make_shared<WorkerService>(host, port);
  transport::spawn_endpoint(*sys, svc, ec);
  for (;;) ::pause();
}

}  // namespace iogrid::runtime::cluster
