#include "runtime/cluster/cluster_client.hpp"

#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

#include <cstring>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "iogrid/core/errors.hpp"
#include "runtime/actor_record.hpp"
#include "runtime/export_table.hpp"
#include "runtime/cluster/code_transfer.hpp"
#include "runtime/cluster/remote_lease.hpp"
#include "runtime/cluster/status_json.hpp"
#include "runtime/cluster/store_server.hpp"
#include "runtime/node_summary.hpp"
#include "runtime/object_store.hpp"
#include "runtime/proto/convert.hpp"
#include "runtime/submitter_core.hpp"
#include "runtime/task_submitter.hpp"
#include "runtime/transport/auth.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/punch.hpp"
#include "runtime/transport/tls.hpp"
#include "runtime/transport/reachability.hpp"
#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/endpoint.hpp"
#include "worker/work_source.hpp"

namespace iogrid::runtime::cluster {

namespace {

using transport::ConnId;
using transport::Endpoint;
using transport::Peer;

kj::ArrayPtr<const kj::byte> bytes_of(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// A received message kept past its frame (flat bytes), and read back later on another thread.
template <class Reader>
std::string copy_flat(Reader r) {
  capnp::MallocMessageBuilder copy;
  copy.setRoot(r);
  auto words = capnp::messageToFlatArray(copy);  // owns the bytes
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

template <class Root, class Fn>
auto with_root(const std::string& bytes, Fn fn) {
  std::vector<capnp::word> words(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.data(), bytes.data(), bytes.size());
  capnp::FlatArrayMessageReader reader(kj::arrayPtr(words.data(), words.size()));
  return fn(reader.getRoot<Root>());
}

std::vector<NodeSummary> nodes_of(proto::StatusReply::Reader r) {
  std::vector<NodeSummary> out;
  for (auto ns : r.getNodes()) {
    auto i = summarize(proto::read(ns.getInfo()));
    i.object_store_used_bytes = ns.getStoreUsedBytes();
    i.object_store_capacity_bytes = ns.getStoreCapacityBytes();
    i.spilled_bytes = ns.getSpilledBytes();
    out.push_back(std::move(i));
  }
  return out;
}

// A lease asked for and not yet attached by a worker.
struct WantedLease {
  LeaseRequest req;
  int restarts = 0;   // times the head placed it and no worker came
};

class DriverService final : public transport::Service {
 public:
  DriverService(std::string head_host, std::uint16_t head_port, std::string parent_job, std::string token)
      : head_host_(std::move(head_host)), head_port_(head_port), token_(std::move(token)), parent_job_(std::move(parent_job)),
        role_(parent_job_.empty() ? proto::Role::DRIVER : proto::Role::WORKER) {}

  std::future<void> joined() { return joined_.get_future(); }
  std::string job_id() const { return job_id_; }

  // ---- called on the endpoint's thread (through post) ----
  void request_lease(Endpoint& ep, LeaseRequest req) {
    if (failed_) {
      req.client->lease_failed(lost_head_error());
      return;
    }
    auto id = ++lease_counter_;
    wanted_[id] = WantedLease{std::move(req)};
    if (head_) send_lease_request(ep, id);  // otherwise sent once the head is back
  }

  void send_lease_request(Endpoint& ep, std::uint64_t id) {
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<proto::Envelope>().initLeaseRequest();
    r.setLeaseId(id);
    proto::write(r.initRequest(), wanted_.at(id).req.request);
    ep.send(head_, msg);
  }

  void kv_put(Endpoint& ep, const std::string& key, const std::string& value) {
    if (!head_) throw core::RuntimeError("iogrid: not connected to the head");
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<proto::Envelope>().initKvPut();
    r.setKey(key);
    r.setValue(bytes_of(value));
    ep.send(head_, msg);
  }

  void kv_get(Endpoint& ep, const std::string& key, std::shared_ptr<std::promise<std::optional<std::string>>> p) {
    if (!head_) {
      p->set_exception(std::make_exception_ptr(core::RuntimeError("iogrid: not connected to the head")));
      return;
    }
    auto id = ++kv_counter_;
    kv_waiters_[id] = std::move(p);
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<proto::Envelope>().initKvGet();
    r.setRequestId(id);
    r.setKey(key);
    ep.send(head_, msg);
  }

  void admin(Endpoint& ep, const std::string& command, const std::string& args, std::shared_ptr<std::promise<std::string>> p) {
    if (!head_) {
      p->set_exception(std::make_exception_ptr(core::RuntimeError("iogrid: not connected to the head")));
      return;
    }
    auto id = ++kv_counter_;
    admin_waiters_[id] = std::move(p);
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<proto::Envelope>().initAdminRequest();
    r.setRequestId(id);
    r.setCommand(command);
    r.setArgs(args);
    ep.send(head_, msg);
  }

  void ask_status(Endpoint& ep, std::shared_ptr<std::promise<std::string>> p) {
    if (!head_) {
      p->set_exception(std::make_exception_ptr(core::RuntimeError("iogrid: not connected to the head")));
      return;
    }
    status_waiters_.push_back(std::move(p));
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initStatusRequest();
    ep.send(head_, msg);
  }

  void finish_job(Endpoint& ep) {
    if (!head_) return;
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initJobEnded().setReason("its driver finished");
    ep.send(head_, msg);
  }

  // Shutdown: every remote lease ends; returns them so the caller can join their threads off this thread.
  std::vector<std::unique_ptr<RemoteLease>> take_leases() {
    std::vector<std::unique_ptr<RemoteLease>> out;
    for (auto& [c, l] : leases_) out.push_back(std::move(l));
    leases_.clear();
    for (auto& l : finished_) out.push_back(std::move(l));
    finished_.clear();
    for (auto& [id, w] : wanted_) w.req.client->lease_failed(TaskSubmitter::stopped_error());
    wanted_.clear();
    return out;
  }

  // How workers find this driver's large objects (the driver's own store, or another node's).
  void set_locate(Locate l) { locate_ = std::move(l); }
  // This process's data plane: served through the head's relay when asked (RELAY_DIAL for data), and told the
  // relay's port for pulls from holders that cannot be dialled. Set before the endpoint starts.
  void set_data_plane(transport::DataServer* server, std::shared_ptr<transport::DataClient> client) {
    data_server_ = server;
    data_client_ = std::move(client);
  }
  // The name the head's relay knows this driver's data plane by ("" for a nested owner: reached like its node).
  std::string data_relay_name() const {
    std::lock_guard<std::mutex> g(host_m_);
    return parent_job_.empty() && !job_id_.empty() ? transport::data_job_relay_name(job_id_) : "";
  }
  std::string observed_host() const {
    std::lock_guard<std::mutex> g(host_m_);
    return observed_host_;
  }
  double head_verify_fraction() const { return head_verify_fraction_.load(std::memory_order_relaxed); }

  void set_code(std::string hash, std::string path) {
    code_hash_ = std::move(hash);
    code_path_ = std::move(path);
  }

  // ---- transport::Service ----
  void on_start(Endpoint& ep) override {
    self_ = ep.handle();
    try {
      // Workers connect here; the port goes to the head with the job, so it is opened first.
      owner_port_ = ep.listen(0, "0.0.0.0");
      head_ = ep.connect(head_host_, head_port_, role_);
    } catch (const std::exception& e) {
      joined_.set_exception(std::make_exception_ptr(core::RuntimeError(e.what())));
      join_done_ = true;
    }
  }

  void on_peer(Endpoint& ep, Peer& p) override {
    if (p.id == head_) {
      capnp::MallocMessageBuilder msg;
      auto r = msg.initRoot<proto::Envelope>().initRegisterJob();
      auto spec = r.initSpec();
      spec.setCodeHash(code_hash_);
      spec.setDriverNode(ep.name());
      std::error_code ec;
      const auto code_size = code_path_.empty() ? 0 : std::filesystem::file_size(code_path_, ec);
      if (!ec) r.setCodeSize(code_size);  // 0: unknown (the head learns it from the first chunk)
      if (const char* user = std::getenv("IOGRID_USER"); user && *user) spec.setUser(user);
      if (const char* w = std::getenv("IOGRID_JOB_WEIGHT"); w && *w) spec.setWeight(std::atof(w));
      r.setOwnerPort(owner_port_);
      r.setLocalHost(transport::local_address_towards(head_host_, head_port_));
      if (const char* sub = std::getenv("IOGRID_SUBMISSION_ID"); sub && *sub) r.setSubmissionId(sub);
      if (!parent_job_.empty()) r.setParentJob(parent_job_);
      else if (!job_id_.empty()) r.setResumeJob(job_id_);
      ep.send(head_, msg);
      return;
    }
    if (p.role != proto::Role::WORKER) ep.close(p.id, "only workers connect to a driver");
  }

  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    using W = proto::Envelope::Which;
    if (p.id == head_) {
      switch (msg.which()) {
        case W::JOB_ACCEPTED: {
          auto a = msg.getJobAccepted();
          {
            std::lock_guard<std::mutex> g(host_m_);
            job_id_ = a.getJobId();
            observed_host_ = a.getObservedHost();
          }
          head_verify_fraction_.store(a.getVerifyFraction(), std::memory_order_relaxed);
          if (a.getRelayPort() && data_client_) data_client_->set_relay(relay_host(a.getRelayHost()), a.getRelayPort());
          const bool resumed = join_done_;
          if (!join_done_) {
            join_done_ = true;
            joined_.set_value();
          }
          if (a.getNeedCode()) spdlog::debug("the head has no copy of this program yet: it asks for it in chunks");
          if (resumed) {
            spdlog::warn("reconnected to the head; {} resumed", job_id_);
            for (const auto& [id, w] : wanted_) send_lease_request(ep, id);
          }
          return;
        }
        case W::USE_RELAY: {
          // The operator's relay this driver used is gone: the head named another.
          auto u = msg.getUseRelay();
          if (data_client_) data_client_->set_relay(relay_host(u.getHost()), u.getPort());
          spdlog::info("the relay this driver used is gone: now {}:{}", relay_host(u.getHost()), u.getPort());
          return;
        }
        case W::CODE_REQUEST: {
          // The head pulls this program a chunk at a time (the other messages are not held up behind it).
          auto r = msg.getCodeRequest();
          send_code_chunk(ep, head_, r.getHash(), r.getOffset(), r.getHash() == code_hash_ ? code_path_ : std::string());
          return;
        }
        case W::LEASE_FAILED: {
          auto f = msg.getLeaseFailed();
          auto it = wanted_.find(f.getLeaseId());
          if (it == wanted_.end()) return;  // attached already: the worker connection tells the rest
          if (f.getRetry() && ++it->second.restarts <= kLeaseRestarts) {
            capnp::MallocMessageBuilder again;
            auto r = again.initRoot<proto::Envelope>().initLeaseRequest();
            r.setLeaseId(it->first);
            proto::write(r.initRequest(), it->second.req.request);
            ep.send(head_, again);
            return;
          }
          auto client = it->second.req.client;
          yield_on_attach_.erase(it->first);
          wanted_.erase(it);
          client->lease_failed(std::make_shared<const core::ErrorInfo>(core::ErrorInfo{
              f.getInfeasible() ? core::ErrorKind::infeasible : core::ErrorKind::task_failed, "", "",
              f.getRetry() ? "iogrid: no worker process could be started for this job (" + std::string(f.getReason()) +
                                 "; " + std::to_string(kLeaseRestarts) + " attempts); see the node's log"
                           : std::string(f.getReason())}));
          return;
        }
        case W::YIELD_LEASE: {
          const auto id = msg.getYieldLease().getLeaseId();
          for (auto& [c, l] : leases_)
            if (l->lease_id() == id) return l->yield();
          // Its worker has not attached yet (a process still starting): it yields once it has served.
          if (wanted_.count(id)) yield_on_attach_.insert(id);
          return;
        }
        case W::STATUS_REPLY: {
          if (status_waiters_.empty()) return;
          status_waiters_.front()->set_value(copy_flat(msg.getStatusReply()));
          status_waiters_.pop_front();
          return;
        }
        case W::NODE_DEAD: {
          auto index = msg.getNodeDead().getNodeIndex();
          std::string why = "node " + std::string(msg.getNodeDead().getName()) + " died (" +
                            std::string(msg.getNodeDead().getReason()) + ")";
          std::vector<ConnId> conns;
          for (auto& [c, l] : leases_)
            if (l->node_index() == index) conns.push_back(c);
          for (auto c : conns) ep.close(c, why);
          // Objects whose copy was there are rebuilt from their lineage (their tasks are queued again).
          for (const auto& o : RemoteObject::on_node(index)) o->mark_lost(why);
          return;
        }
        case W::RELAY_DIAL: {
          // A worker that cannot dial this driver waits at a relay (the head's, or an operator's at d.host):
          // meet it there.
          auto d = msg.getRelayDial();
          const auto via = relay_host(d.getHost());
          if (d.getData()) {  // a pull of this driver's objects
            if (data_server_) data_server_->serve_dialled(via, d.getPort(), d.getSession(), d.getPunch());
            return;
          }
          if (d.getPunch()) {
            // The worker would rather connect directly: the punch (transport/punch.hpp) waits up to its window,
            // so it runs on a thread of its own and the connection it ends with is handed to this endpoint.
            std::thread([this, actor = ep.handle(), host = via, port = d.getPort(), session = std::string(d.getSession()),
                         token = token_] {
              auto link = transport::relay_accept(host, port, session, token, true, std::chrono::seconds(5));
              if (link.fd < 0) {
                spdlog::warn("cannot meet a worker at the relay {}:{}: {}", host, port, link.error);
                return;
              }
              // Closed unless the endpoint takes it (it may have stopped meanwhile).
              auto fd = std::shared_ptr<int>(new int(link.fd), [](int* f) {
                if (*f >= 0) ::close(*f);
                delete f;
              });
              transport::post(actor, [this, fd, punched = link.punched](Endpoint& e) {
                e.adopt(std::exchange(*fd, -1), punched ? "a worker (hole punched)" : "a worker (relayed)", false, proto::Role::WORKER);
                if (!punched) ++relayed_;
              });
            }).detach();
            return;
          }
          try {
            ep.connect_as_server(via, d.getPort(), transport::relay_hello("ACCEPT", d.getSession(), token_));
            ++relayed_;
          } catch (const std::exception& e) {
            spdlog::warn("cannot reach the relay at {}:{}: {}", via, d.getPort(), e.what());
          }
          return;
        }
        case W::JOB_ENDED: {
          if (stopping_) return;
          spdlog::error("the head ended this job: {}", std::string(msg.getJobEnded().getReason()));
          failed_ = true;
          std::_Exit(143);
        }
        case W::ADMIN_REPLY: {
          auto v = msg.getAdminReply();
          auto it = admin_waiters_.find(v.getRequestId());
          if (it == admin_waiters_.end()) return;
          if (v.getOk()) it->second->set_value(std::string(v.getBody()));
          else it->second->set_exception(std::make_exception_ptr(core::Error(std::string(v.getError()))));
          admin_waiters_.erase(it);
          return;
        }
        case W::KV_VALUE: {
          auto v = msg.getKvValue();
          auto it = kv_waiters_.find(v.getRequestId());
          if (it == kv_waiters_.end()) return;
          auto d = v.getValue();
          if (v.getFound()) it->second->set_value(std::string(reinterpret_cast<const char*>(d.begin()), d.size()));
          else it->second->set_value(std::nullopt);
          kv_waiters_.erase(it);
          return;
        }
        default:
          return;
      }
    }
    // A worker process.
    switch (msg.which()) {
      case W::ATTACH: {
        auto a = msg.getAttach();
        auto it = wanted_.find(a.getLeaseId());
        if (it == wanted_.end()) return ep.close(p.id, "unknown lease");
        if (auto old = leases_.find(p.id); old != leases_.end()) {
          // The worker finished our previous lease (it only attaches again after EndLease).
          finished_.push_back(std::move(old->second));
          leases_.erase(old);
        }
        auto req = std::move(it->second.req);
        wanted_.erase(it);
        worker::WorkerContext ctx;
        ctx.node_name = a.getNodeName();
        ctx.node_index = a.getNodeIndex();
        ctx.worker_id = static_cast<std::uint64_t>(a.getPid());
        req.client->lease_granted();
        auto lease = std::make_unique<RemoteLease>(self_, p.id, req.source, ctx, a.getLeaseId(), kWindow, locate_);
        if (yield_on_attach_.erase(a.getLeaseId())) lease->yield();
        lease->start();
        leases_[p.id] = std::move(lease);
        return;
      }
      case W::RESULTS: {
        auto it = leases_.find(p.id);
        if (it != leases_.end()) it->second->on_results(msg.getResults());
        return;
      }
      default:
        spdlog::warn("closing connection from worker {}: unexpected message", p.name);
        return ep.close(p.id, "unexpected message");
    }
  }

  void on_closed(Endpoint& ep, Peer& p, const std::string& why) override {
    if (p.id == head_) {
      head_ = 0;
      if (!join_done_) {
        join_done_ = true;
        joined_.set_exception(std::make_exception_ptr(core::RuntimeError(
            "iogrid: the head at " + head_host_ + ":" + std::to_string(head_port_) + " " +
            (why.rfind("refused", 0) == 0 ? why : "closed the connection (" + why + ")"))));
        return;
      }
      if (stopping_) return;
      // Work already on workers goes on (they talk to us directly); new leases wait for the head to return.
      spdlog::warn("lost the connection to the head ({}); reconnecting for up to {} s", why, kHeadReconnect.count());
      reconnect_deadline_ = std::chrono::steady_clock::now() + kHeadReconnect;
      next_try_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      for (auto& [id, p] : kv_waiters_) p->set_exception(std::make_exception_ptr(core::RuntimeError("iogrid: lost the connection to the head")));
      kv_waiters_.clear();
      for (auto& [id, p] : admin_waiters_) p->set_exception(std::make_exception_ptr(core::RuntimeError("iogrid: lost the connection to the head")));
      admin_waiters_.clear();
      for (auto& p : status_waiters_) p->set_exception(std::make_exception_ptr(core::RuntimeError("iogrid: lost the connection to the head")));
      status_waiters_.clear();
      return;
    }
    auto it = leases_.find(p.id);
    if (it == leases_.end()) return;
    it->second->lost("its connection closed (" + why + ")");
    finished_.push_back(std::move(it->second));
    leases_.erase(it);
  }

  void on_stop(Endpoint&) override {
    stopping_ = true;
    self_ = nullptr;  // the endpoint holds this service: no reference back, or neither is ever freed
  }
  void set_stopping() { stopping_ = true; }

  // The job's tasks as this owner sees them, for the head's dashboard: `report(after_ms)` gives the JSON of
  // TaskStats::snapshot with the spans ended after `after_ms` ("" when nothing changed).
  void set_reporter(std::function<std::string(bool force)> report) { reporter_ = std::move(report); }
  void send_report(Endpoint& ep, bool force) {
    if (!reporter_ || !head_ || job_id_.empty()) return;
    auto json = reporter_(force);
    if (json.empty()) return;
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initTaskReport().setJson(json);
    ep.send(head_, msg);
  }

  void on_tick(Endpoint& ep) override {
    if (!head_ && join_done_ && !failed_ && !stopping_) reconnect(ep);
    if (const auto now = std::chrono::steady_clock::now(); now - last_report_ >= std::chrono::seconds(1)) {
      last_report_ = now;
      send_report(ep, false);
    }
    // Reclaim the threads of leases that ended.
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second->finished()) {
        finished_.push_back(std::move(it->second));
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = finished_.begin(); it != finished_.end();)
      it = (*it)->finished() ? finished_.erase(it) : std::next(it);
  }

 private:
  void reconnect(Endpoint& ep) {
    auto now = std::chrono::steady_clock::now();
    if (now > reconnect_deadline_) {
      spdlog::error("the head did not come back within {} s; the job cannot place more work", kHeadReconnect.count());
      failed_ = true;
      for (auto& [id, w] : wanted_) w.req.client->lease_failed(lost_head_error());
      wanted_.clear();
      return;
    }
    if (now < next_try_) return;
    next_try_ = now + std::chrono::milliseconds(500);
    try {
      head_ = ep.connect(head_host_, head_port_, role_);
    } catch (const std::exception&) {
      head_ = 0;
    }
  }

  static constexpr std::chrono::seconds kHeadReconnect{60};
  static constexpr std::size_t kWindow = 64;
  static constexpr int kLeaseRestarts = 3;
  std::shared_ptr<const core::ErrorInfo> lost_head_error() const {
    return std::make_shared<const core::ErrorInfo>(core::ErrorInfo{
        core::ErrorKind::runtime_stopped, "", "", "iogrid: lost the connection to the head; the job cannot place work"});
  }

  // A relay's address as the head names it: "" is the head's own.
  std::string relay_host(const std::string& named) const { return named.empty() ? head_host_ : named; }
  std::string head_host_;
  std::uint16_t head_port_;
  std::string token_;          // signs a relay's first line
  std::uint64_t relayed_ = 0;  // workers met through the head's relay
  std::string parent_job_;
  proto::Role role_;
  caf::actor self_;
  ConnId head_ = 0;
  std::uint16_t owner_port_ = 0;
  std::function<std::string(bool)> reporter_;
  std::chrono::steady_clock::time_point last_report_{};
  std::string code_hash_, code_path_, job_id_;
  std::promise<void> joined_;
  bool join_done_ = false, failed_ = false, stopping_ = false;
  std::uint64_t lease_counter_ = 0;
  std::unordered_map<std::uint64_t, WantedLease> wanted_;
  std::unordered_set<std::uint64_t> yield_on_attach_;  // asked to yield before their worker attached
  std::unordered_map<ConnId, std::unique_ptr<RemoteLease>> leases_;
  std::vector<std::unique_ptr<RemoteLease>> finished_;
  std::deque<std::shared_ptr<std::promise<std::string>>> status_waiters_;
  std::uint64_t kv_counter_ = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<std::promise<std::optional<std::string>>>> kv_waiters_;
  std::unordered_map<std::uint64_t, std::shared_ptr<std::promise<std::string>>> admin_waiters_;
  std::chrono::steady_clock::time_point reconnect_deadline_{}, next_try_{};
  Locate locate_;
  mutable std::mutex host_m_;
  std::string observed_host_;
  std::atomic<double> head_verify_fraction_{0};  // iogrid head --verify-fraction
  transport::DataServer* data_server_ = nullptr;  // owned by the ClusterClient, which stops this service first
  std::shared_ptr<transport::DataClient> data_client_;
};

class ClusterClient final : public SubmitterCore {
 public:
  explicit ClusterClient(ClientOptions opts) {
    cfg_.load<caf::io::middleman>();
    cfg_.set("scheduler.max-threads", 2);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    auto [host, port] = transport::parse_address(opts.address);
    svc_ = std::make_shared<DriverService>(host, port, opts.parent_job, opts.token);
    // The running program itself, through /proc/self/exe (the inode this process runs, even if its file was
    // rebuilt or deleted since it started): what the head pulls later is what was hashed now.
    svc_->set_code(transport::sha256_file("/proc/self/exe"), "/proc/self/exe");
    auto tls = transport::make_tls_context(transport::tls_from_env());  // IOGRID_TLS_CERT/KEY/CA
    data_client_ = transport::process_data_client();
    if (!data_client_) {
      data_client_ = std::make_shared<transport::DataClient>(opts.token, tls);
      transport::set_process_data_client(data_client_);
    }
    store_ = std::make_shared<ObjectStore>("driver", physical_store_bytes(),
                                           std::filesystem::temp_directory_path() / ("iogrid-spill-" + std::to_string(getpid())));
    data_server_ = serve_store(opts.token, store_, false, tls);  // freed by the driver's own references
    svc_->set_locate([svc = svc_.get(), port = data_server_->port()](const core::ObjectEntry& e) -> std::optional<Location> {
      if (auto* r = dynamic_cast<RemoteObject*>(e.store.get())) return r->location();
      if (!e.store) return std::nullopt;
      return Location{svc->observed_host(), port, e.id, e.size, 0xffffffffu, svc->data_relay_name()};
    });
    svc_->set_data_plane(data_server_.get(), data_client_);
    transport::EndpointConfig ec;
    ec.token = opts.token;
    ec.name = (opts.parent_job.empty() ? "driver-" : "nested-owner-") + std::to_string(::getpid());
    ec.tls = tls;
    auto joined = svc_->joined();
    ep_ = transport::spawn_endpoint(*sys_, svc_, ec);
    if (joined.wait_for(opts.connect_timeout) != std::future_status::ready) {
      teardown();
      throw core::RuntimeError("iogrid: no answer from the head at " + opts.address + " within " +
                         std::to_string(opts.connect_timeout.count()) + " ms");
    }
    try {
      joined.get();
    } catch (...) {
      teardown();
      throw;
    }
    TaskSubmitter::Hooks hooks;
    hooks.request_lease = [this](LeaseRequest r) {
      transport::post(ep_, [svc = svc_, r = std::move(r)](Endpoint& ep) mutable { svc->request_lease(ep, std::move(r)); });
    };
    hooks.store_of = [this](std::uint32_t) { return store_; };
    hooks.new_entry = [this] { return new_entry(); };
    hooks.wait_for_contained = true;
    hooks.verify_fraction = opts.verify_fraction >= 0 ? opts.verify_fraction : svc_->head_verify_fraction();
    hooks.check_seed = opts.verify_seed;
    set_id_base(fresh_id_base());
    submitter_ = std::make_unique<TaskSubmitter>(std::move(hooks), opts.lease_idle);
    // Each second (and once at the end) the head hears how this owner's tasks stand, with the spans since.
    transport::post(ep_, [svc = svc_, stats = &submitter_->stats()](Endpoint&) {
      svc->set_reporter([stats, seen = std::uint64_t(0), cursor = TaskStats::Cursor{}](bool force) mutable -> std::string {
        const auto changes = stats->changes();
        if (changes == seen && !force) return "";
        seen = changes;
        return stats->report(cursor).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      });
    });
  }

  ~ClusterClient() override { stop(); }

  void stop() override {
    if (stopped_.exchange(true)) return;
    if (submitter_) submitter_->shutdown();
    transport::post(ep_, [svc = svc_](Endpoint& ep) {
      svc->send_report(ep, true);
      svc->finish_job(ep);
      svc->set_stopping();
    });
    teardown();
  }

  std::string advertised_host() const override {
    auto h = svc_->observed_host();
    return h.empty() ? "127.0.0.1" : h;
  }

  std::vector<NodeSummary> describe() override {
    auto p = std::make_shared<std::promise<std::string>>();
    auto f = p->get_future();
    transport::post(ep_, [svc = svc_, p](Endpoint& ep) { svc->ask_status(ep, p); });
    if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
      throw core::RuntimeError("iogrid: the head did not answer a status request within 10 s");
    return with_root<proto::StatusReply>(f.get(), [](proto::StatusReply::Reader r) { return nodes_of(r); });
  }

  void kv_put(const std::string& key, const std::string& value) override {
    auto p = std::make_shared<std::promise<void>>();
    auto f = p->get_future();
    transport::post(ep_, [svc = svc_, p, key, value](Endpoint& ep) {
      try {
        svc->kv_put(ep, key, value);
        p->set_value();
      } catch (...) {
        p->set_exception(std::current_exception());
      }
    });
    f.get();
  }

  std::optional<std::string> kv_get(const std::string& key) override {
    auto p = std::make_shared<std::promise<std::optional<std::string>>>();
    auto f = p->get_future();
    transport::post(ep_, [svc = svc_, p, key](Endpoint& ep) { svc->kv_get(ep, key, p); });
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
      throw core::RuntimeError("iogrid: the head did not answer a key-value request within 30 s");
    return f.get();
  }

  std::string admin(const std::string& command, const std::string& args) override {
    auto p = std::make_shared<std::promise<std::string>>();
    auto f = p->get_future();
    transport::post(ep_, [svc = svc_, p, command, args](Endpoint& ep) { svc->admin(ep, command, args, p); });
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
      throw core::RuntimeError("iogrid: the head did not answer within 30 s");
    return f.get();
  }

  // ---- core::Core (the rest comes from SubmitterCore) ----
  std::shared_ptr<void> export_ref(core::ObjectEntry* e) override { return process_export_table().export_ref(e); }
  core::RefHandle import_ref(std::uint64_t id) override { return process_export_table().import_ref(id); }
  std::string current_node() const override { return "driver"; }

 private:
  static std::int64_t physical_store_bytes() {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? std::int64_t(pages) * size / 4 : std::int64_t(2) << 30;
  }

  void teardown() {
    if (!sys_) return;
    auto p = std::make_shared<std::promise<std::vector<std::unique_ptr<RemoteLease>>>>();
    auto f = p->get_future();
    transport::post(ep_, [svc = svc_, p](Endpoint&) { p->set_value(svc->take_leases()); });
    if (f.wait_for(std::chrono::seconds(5)) == std::future_status::ready) {
      auto leases = f.get();
      leases.clear();  // joins their threads (each sees its lease lost)
    }
    transport::post(ep_, [](Endpoint& ep) { ep.stop(); });
    ep_ = nullptr;
    sys_.reset();
    // The process's data client (and its I/O thread) goes with the runtime: left to static destruction it would
    // still run while exit's handlers free OpenSSL's per-thread state (a race ThreadSanitizer reports). An init()
    // after this shutdown() makes a new one.
    if (transport::process_data_client() == data_client_) transport::set_process_data_client(nullptr);
    data_client_.reset();
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<DriverService> svc_;
  caf::actor ep_;
  std::shared_ptr<ObjectStore> store_;
  std::shared_ptr<transport::DataClient> data_client_;
  std::unique_ptr<transport::DataServer> data_server_;
  std::atomic<bool> stopped_{false};
};

// A one-shot query of the head for the CLI.
class QueryService final : public transport::Service {
 public:
  QueryService(std::string host, std::uint16_t port, std::function<void(Endpoint&, ConnId)> ask)
      : host_(std::move(host)), port_(port), ask_(std::move(ask)) {}
  std::future<std::string> result() { return done_.get_future(); }

  void on_start(Endpoint& ep) override {
    try {
      head_ = ep.connect(host_, port_, proto::Role::CLI);
    } catch (...) {
      finish_error(std::current_exception());
    }
  }
  void on_peer(Endpoint& ep, Peer& p) override { ask_(ep, p.id); }
  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    if (finished_) return;
    if (msg.which() == proto::Envelope::Which::REJECT)
      return finish_error(std::make_exception_ptr(core::Error("iogrid: " + std::string(msg.getReject().getReason()))));
    finished_ = true;
    done_.set_value(copy_flat(msg));
  }
  void on_closed(Endpoint&, Peer&, const std::string& why) override {
    finish_error(std::make_exception_ptr(core::Error("iogrid: the head at " + host_ + ":" + std::to_string(port_) + " " +
                                               (why.rfind("refused", 0) == 0 ? why : "closed the connection (" + why + ")"))));
  }

 private:
  void finish_error(std::exception_ptr e) {
    if (finished_) return;
    finished_ = true;
    done_.set_exception(e);
  }
  std::string host_;
  std::uint16_t port_;
  std::function<void(Endpoint&, ConnId)> ask_;
  ConnId head_ = 0;
  std::promise<std::string> done_;
  bool finished_ = false;
};

// Sends one request and returns the reply envelope's bytes.
std::string query_head(const std::string& address, const std::string& token, std::function<void(Endpoint&, ConnId)> ask,
                       std::chrono::seconds timeout = std::chrono::seconds(10)) {
  auto [host, port] = transport::parse_address(address);
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", 1);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto svc = std::make_shared<QueryService>(host, port, std::move(ask));
  auto result = svc->result();
  transport::EndpointConfig ec;
  ec.token = token;
  ec.name = "cli-" + std::to_string(::getpid());
  ec.tls = transport::make_tls_context(transport::tls_from_env());
  auto ep = transport::spawn_endpoint(sys, svc, ec);
  std::string out;
  std::exception_ptr err;
  if (result.wait_for(timeout) != std::future_status::ready) {
    err = std::make_exception_ptr(core::Error("iogrid: no answer from the head at " + address + " within " +
                                        std::to_string(timeout.count()) + " s"));
  } else {
    try {
      out = result.get();
    } catch (...) {
      err = std::current_exception();
    }
  }
  transport::post(ep, [](Endpoint& e) { e.stop(); });
  if (err) std::rethrow_exception(err);
  return out;
}


}  // namespace

std::unique_ptr<SubmitterCore> connect_cluster(ClientOptions opts) {
  return std::make_unique<ClusterClient>(std::move(opts));
}

std::string cluster_status_json(const std::string& address, const std::string& token) {
  auto bytes = query_head(address, token, [](Endpoint& ep, ConnId c) {
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initStatusRequest();
    ep.send(c, msg);
  });
  return with_root<proto::Envelope>(bytes, [](proto::Envelope::Reader env) {
    if (env.which() != proto::Envelope::Which::STATUS_REPLY) throw core::Error("iogrid: unexpected answer from the head");
    return status_json(env.getStatusReply()).dump();
  });
}

std::string admin(const std::string& address, const std::string& token, const std::string& command,
                  const std::string& args, std::chrono::seconds timeout) {
  auto bytes = query_head(address, token, [command, args](Endpoint& ep, ConnId c) {
    capnp::MallocMessageBuilder msg;
    auto r = msg.initRoot<proto::Envelope>().initAdminRequest();
    r.setRequestId(1);
    r.setCommand(command);
    r.setArgs(args);
    ep.send(c, msg);
  }, timeout);
  return with_root<proto::Envelope>(bytes, [&](proto::Envelope::Reader env) {
    if (env.which() != proto::Envelope::Which::ADMIN_REPLY) throw core::Error("iogrid: unexpected answer from the head");
    auto r = env.getAdminReply();
    if (!r.getOk()) throw core::Error(std::string(r.getError()));
    return std::string(r.getBody());
  });
}

std::string job_logs(const std::string& address, const std::string& token, const std::string& job_id) {
  auto bytes = query_head(address, token, [job_id](Endpoint& ep, ConnId c) {
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initJobLogsRequest().setJobId(job_id);
    ep.send(c, msg);
  });
  return with_root<proto::Envelope>(bytes, [&](proto::Envelope::Reader env) {
    if (env.which() != proto::Envelope::Which::JOB_LOGS_REPLY) throw core::Error("iogrid: unexpected answer from the head");
    auto r = env.getJobLogsReply();
    if (!r.getFound()) throw core::Error("iogrid: the head knows no job " + job_id + " (see iogrid job list)");
    auto t = r.getText();
    return std::string(reinterpret_cast<const char*>(t.begin()), t.size());
  });
}

// Forwards text to the head as a job's log, from `iogrid job submit`.
class LogForwarder final : public transport::Service {
 public:
  LogForwarder(std::string host, std::uint16_t port, std::string submission)
      : host_(std::move(host)), port_(port), submission_(std::move(submission)) {}
  void on_start(Endpoint& ep) override {
    try {
      head_ = ep.connect(host_, port_, proto::Role::CLI);
    } catch (const std::exception& e) {
      spdlog::warn("job logs will not reach the head: {}", e.what());
    }
  }
  void on_peer(Endpoint& ep, Peer&) override {
    ready_ = true;
    flush(ep);
  }
  void on_message(Endpoint&, Peer&, proto::Envelope::Reader) override {}
  void on_closed(Endpoint&, Peer&, const std::string&) override { ready_ = false; head_ = 0; }
  void add(Endpoint& ep, std::string text) {
    pending_ += text;
    flush(ep);
  }

 private:
  void flush(Endpoint& ep) {
    if (!ready_ || pending_.empty()) return;
    capnp::MallocMessageBuilder msg;
    auto l = msg.initRoot<proto::Envelope>().initJobLog();
    l.setSubmissionId(submission_);
    l.setText(bytes_of(pending_));
    ep.send(head_, msg);
    pending_.clear();
  }
  std::string host_;
  std::uint16_t port_;
  std::string submission_, pending_;
  ConnId head_ = 0;
  bool ready_ = false;
};

int submit_job(const std::string& address, const std::string& token, const std::string& token_file,
               std::vector<std::string> program) {
  auto [host, port] = transport::parse_address(address);
  auto submission = transport::to_hex(transport::random_bytes(8));
  int fds[2];
  if (::pipe(fds) != 0) throw core::Error("iogrid: cannot create a pipe for the driver's output");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    ::setenv("IOGRID_ADDRESS", address.c_str(), 1);
    ::setenv("IOGRID_TOKEN_FILE", token_file.c_str(), 1);
    ::setenv("IOGRID_SUBMISSION_ID", submission.c_str(), 1);
    std::vector<char*> argv;
    for (auto& s : program) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "iogrid job submit: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.max-threads", 1);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto svc = std::make_shared<LogForwarder>(host, port, submission);
  transport::EndpointConfig ec;
  ec.token = token;
  ec.name = "job-submit-" + std::to_string(::getpid());
  ec.tls = transport::make_tls_context(transport::tls_from_env());
  auto ep = transport::spawn_endpoint(sys, svc, ec);
  char buf[65536];
  for (;;) {
    auto n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    (void)!::write(1, buf, static_cast<std::size_t>(n));
    transport::post(ep, [svc, text = std::string(buf, static_cast<std::size_t>(n))](Endpoint& e) { svc->add(e, text); });
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the last output reaches the head
  transport::post(ep, [](Endpoint& e) { e.stop(); });
  if (WIFSIGNALED(status)) {
    std::fprintf(stderr, "iogrid job submit: the driver died from signal %d\n", WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  return WEXITSTATUS(status);
}

std::string stop_job(const std::string& address, const std::string& token, const std::string& job_id) {
  auto bytes = query_head(address, token, [job_id](Endpoint& ep, ConnId c) {
    capnp::MallocMessageBuilder msg;
    msg.initRoot<proto::Envelope>().initStopJob().setJobId(job_id);
    ep.send(c, msg);
  });
  return with_root<proto::Envelope>(bytes, [&](proto::Envelope::Reader env) {
    if (env.which() != proto::Envelope::Which::STATUS_REPLY) throw core::Error("iogrid: unexpected answer from the head");
    return "stopped " + job_id;
  });
}

}  // namespace iogrid::runtime::cluster
