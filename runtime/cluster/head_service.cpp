#include "runtime/cluster/head_service.hpp"

#include <spdlog/spdlog.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <future>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "iogrid/errors.hpp"
#include "runtime/cluster/head_store.hpp"
#include "runtime/cluster/status_json.hpp"
#include "runtime/proto/convert.hpp"
#include "runtime/transport/auth.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/policy.hpp"
#include "scheduler/scheduler.hpp"
#include "scheduler/reputation.hpp"
#include "gpu/devices.hpp"
#include "gpu/verify/challenge.hpp"
#include "runtime/reservations.hpp"

namespace iogrid::runtime::cluster {

namespace {

using transport::ConnId;
using transport::Endpoint;
using transport::Peer;
using Clock = std::chrono::steady_clock;

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

kj::ArrayPtr<const kj::byte> bytes_of(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

struct NodeRec {
  ConnId conn = 0;
  std::map<std::uint64_t, std::uint64_t> objects;  // the object directory: key -> size of copies held here
  std::int64_t store_used = 0, store_capacity = 0, store_objects = 0, spilled = 0;
  std::string host;
  Clock::time_point last_heartbeat;
  Clock::time_point uptime_credited;  // reputation: an hour of uptime is credited from here
  std::string verification;           // the last verification verdict(s), shown by iogrid status
  std::vector<gpu::Telemetry> telemetry;  // the GPUs' state from the last heartbeat
  std::uint32_t active_leases = 0;
};

struct JobRec {
  std::string id;
  ConnId conn = 0;
  std::string driver;
  std::string code_hash;
  std::string owner_host;
  std::uint16_t owner_port = 0;
  std::string state = "running";
  std::uint64_t leases_granted = 0;
  std::uint32_t active_leases = 0;
  std::uint64_t started = 0, ended = 0;
  Clock::time_point orphaned_since{};  // restored from state with no driver connected yet
  std::set<std::uint64_t> reservations;  // reservations its leases ran in
  std::string user = "default";           // fair share
  double weight = 1;
};

struct OwnerRec {  // a driver, or a worker submitting nested tasks for its job
  std::string job;
  std::string host;
  std::uint16_t port = 0;
};

struct PendingLease {
  ConnId owner = 0;
  std::uint64_t owner_lease = 0;
  sched::ResourceRequest request;
};

struct LeaseRec {
  std::string job;
  ConnId owner = 0;
  std::uint64_t owner_lease = 0;
  sched::Allocation alloc;
  std::uint64_t reservation = 0;        // the reservation it runs in, 0: none
  Clock::time_point start = Clock::now();
  double price = 0;                     // the node's price per GPU-hour when granted
};

class HeadService final : public transport::Service {
 public:
  explicit HeadService(HeadOptions o) : opts_(std::move(o)), sched_(sched::make_policy(opts_.policy)) {
    code_dir_ = opts_.state_dir.empty()
                    ? std::filesystem::temp_directory_path() / ("iogrid-head-" + std::to_string(::getpid())) / "code"
                    : std::filesystem::path(opts_.state_dir) / "code";
    std::filesystem::create_directories(code_dir_);
    if (!opts_.state_dir.empty()) restore();
  }

  void on_start(Endpoint& ep) override {}

  // The status as JSON (the dashboard asks through the endpoint, so this runs on its thread).
  std::string status_text(Endpoint& ep) {
    capnp::MallocMessageBuilder out;
    auto r = out.initRoot<proto::StatusReply>();
    fill_status(ep, r);
    return status_json(r.asReader()).dump();
  }

  // ---- durable state ----
  void restore() {
    store_ = std::make_unique<HeadStore>(opts_.state_dir);
    for (const auto& sn : store_->nodes()) {
      std::vector<std::uint8_t> bytes(sn.info.begin(), sn.info.end());
      auto n = proto::decode_node(bytes);
      n.index = sn.index;
      n.alive = false;  // until it reconnects
      n.available = {};
      while (state_.size() < sn.index) {
        sched::Node gap;
        gap.alive = false;
        state_.add(std::move(gap));
        nodes_.emplace_back();
      }
      state_.add(std::move(n));
      NodeRec rec;
      rec.host = sn.host;
      nodes_.push_back(rec);
    }
    auto now = Clock::now();
    for (const auto& sj : store_->jobs()) {
      JobRec j;
      j.id = sj.id;
      j.driver = sj.driver;
      j.code_hash = sj.code_hash;
      j.owner_host = sj.owner_host;
      j.owner_port = sj.owner_port;
      j.state = sj.state;
      j.leases_granted = sj.leases_granted;
      j.started = sj.started;
      j.ended = sj.ended;
      j.orphaned_since = now;
      jobs_[j.id] = j;
    }
    kv_ = store_->kv();
    try {
      ledger_ = sched::Ledger::load(store_->document("ledger"));
    } catch (const std::exception& e) {
      spdlog::warn("the ledger in {} is unreadable ({}); starting a new one", store_->path(), e.what());
    }
    try {
      reservations_.load(store_->document("clusters"));
    } catch (const std::exception& e) {
      spdlog::warn("the clusters in {} are unreadable ({}); they are dropped", store_->path(), e.what());
    }
    for (const auto& [id, j] : jobs_) {
      std::ifstream in(std::filesystem::path(opts_.state_dir) / "logs" / (id + ".log"), std::ios::binary);
      if (!in) continue;
      std::stringstream ss;
      ss << in.rdbuf();
      auto text = ss.str();
      logs_[id] = text.size() > kMaxLog ? text.substr(text.size() - kMaxLog) : text;
    }
    job_counter_ = store_->counter("job");
    lease_counter_ = store_->counter("lease");
    lease_reserved_ = lease_counter_;
    // Nodes need a moment to rejoin: until then a request nothing alive can hold waits instead of failing.
    if (!(state_.size() == 0)) rejoin_grace_until_ = Clock::now() + kRejoinGrace;
    spdlog::info("restored head state from {}: {} nodes (waiting for them to reconnect), {} jobs, {} keys",
                 store_->path(), state_.size(), jobs_.size(), kv_.size());
  }

  void save_node(std::uint32_t index) {
    if (!store_) return;
    const auto& n = state_.nodes()[index];
    auto bytes = proto::encode(n);
    store_->put_node(StoredNode{index, n.name, std::string(bytes.begin(), bytes.end()), nodes_[index].host, n.alive});
  }

  void save_job(const JobRec& j) {
    if (!store_) return;
    store_->put_job(StoredJob{j.id, j.driver, j.code_hash, j.owner_host, j.state, j.owner_port, j.leases_granted, j.started, j.ended});
  }

  std::uint64_t next_lease_id() {
    auto id = ++lease_counter_;
    if (store_ && id > lease_reserved_) {  // ids are reserved in blocks so a restart never reuses one
      lease_reserved_ = id + 1000;
      store_->put_counter("lease", lease_reserved_);
    }
    return id;
  }

  void on_peer(Endpoint& ep, Peer& p) override {
    spdlog::debug("{} '{}' connected from {}", static_cast<int>(p.role), p.name, p.address);
  }

  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    using W = proto::Envelope::Which;
    switch (msg.which()) {
      case W::REGISTER_NODE: return register_node(ep, p, msg.getRegisterNode());
      case W::HEARTBEAT: return heartbeat(p, msg.getHeartbeat());
      case W::REGISTER_JOB: return register_job(ep, p, msg.getRegisterJob());
      case W::CODE: return store_code(ep, p, msg.getCode());
      case W::CODE_REQUEST: return send_code(ep, p, msg.getCodeRequest().getHash());
      case W::LEASE_REQUEST: return lease_request(ep, p, msg.getLeaseRequest());
      case W::LEASE_DONE: return lease_done(ep, msg.getLeaseDone().getLeaseId());
      case W::JOB_ENDED: return job_finished(ep, p, msg.getJobEnded().getReason());
      case W::STATUS_REQUEST: return status(ep, p);
      case W::KV_PUT: {
        auto v = msg.getKvPut().getValue();
        std::string key = msg.getKvPut().getKey();
        auto& slot = kv_[key];
        slot = std::string(reinterpret_cast<const char*>(v.begin()), v.size());
        if (store_) store_->put_kv(key, slot);
        return;
      }
      case W::KV_GET: {
        auto k = std::string(msg.getKvGet().getKey());
        capnp::MallocMessageBuilder out;
        auto r = out.initRoot<proto::Envelope>().initKvValue();
        r.setRequestId(msg.getKvGet().getRequestId());
        auto it = kv_.find(k);
        r.setFound(it != kv_.end());
        if (it != kv_.end()) r.setValue(bytes_of(it->second));
        return ep.send(p.id, out);
      }
      case W::STOP_JOB: return stop_job(ep, p, msg.getStopJob().getJobId());
      case W::ADMIN_REQUEST: return admin(ep, p, msg.getAdminRequest());
      case W::VERIFY_COMMIT: return verify_commit(ep, p, msg.getVerifyCommit());
      case W::VERIFY_ROWS: return verify_rows(ep, p, msg.getVerifyRows());
      case W::OBJECTS_ADDED: {
        auto it = node_by_conn_.find(p.id);
        if (it == node_by_conn_.end()) return;
        auto a = msg.getObjectsAdded();
        auto keys = a.getKeys();
        auto sizes = a.getSizes();
        for (unsigned i = 0; i < keys.size() && i < sizes.size(); ++i) nodes_[it->second].objects[keys[i]] = sizes[i];
        return;
      }
      case W::OBJECTS_REMOVED: {
        auto it = node_by_conn_.find(p.id);
        if (it == node_by_conn_.end()) return;
        for (auto k : msg.getObjectsRemoved().getKeys()) nodes_[it->second].objects.erase(k);
        return;
      }
      case W::JOB_LOG: {
        auto l = msg.getJobLog();
        auto t = l.getText();
        std::string text(reinterpret_cast<const char*>(t.begin()), t.size());
        std::string job = l.getJobId();
        if (job.empty()) {
          auto it = submissions_.find(l.getSubmissionId());
          if (it == submissions_.end()) return append_log("submission:" + std::string(l.getSubmissionId()), text);
          job = it->second;
        }
        return append_log(job, text);
      }
      case W::JOB_LOGS_REQUEST: {
        std::string job = msg.getJobLogsRequest().getJobId();
        capnp::MallocMessageBuilder out;
        auto r = out.initRoot<proto::Envelope>().initJobLogsReply();
        r.setJobId(job);
        auto it = logs_.find(job);
        r.setFound(jobs_.count(job) > 0);
        if (it != logs_.end()) r.setText(bytes_of(it->second));
        return ep.send(p.id, out);
      }
      case W::LEASE_BLOCKED: {
        // As in embedded mode: a task parked in get lends its CPUs (its GPUs stay held); on resuming it takes
        // them back even if that briefly over-commits the node.
        auto lb = msg.getLeaseBlocked();
        auto it = leases_.find(lb.getLeaseId());
        if (it == leases_.end() || it->second.alloc.node >= state_.size()) return;
        const auto& alloc = it->second.alloc;
        if (!state_.node(alloc.node).alive) return;
        if (lb.getBlocked()) {
          state_.adjust_cpus(alloc.node, alloc.cpus);
          hand_out(ep, sched_.schedule_freed(alloc.node));
        } else {
          state_.adjust_cpus(alloc.node, -alloc.cpus);
        }
        return;
      }
      default:
        spdlog::warn("closing connection from {} ('{}'): unexpected message {}", p.address, p.name,
                     static_cast<int>(msg.which()));
        return ep.close(p.id, "unexpected message");
    }
  }

  void on_closed(Endpoint& ep, Peer& p, const std::string& why) override {
    if (auto it = node_by_conn_.find(p.id); it != node_by_conn_.end()) {
      auto index = it->second;
      node_by_conn_.erase(it);
      node_dead(ep, index, why);
    }
    if (auto it = owners_.find(p.id); it != owners_.end()) {
      auto job_id = it->second.job;
      owners_.erase(it);
      // Leases this owner was still waiting for will never be used.
      drop_pending([&](const PendingLease& q) { return q.owner == p.id; });
      auto j = jobs_.find(job_id);
      if (j != jobs_.end() && j->second.conn == p.id) end_job(ep, j->second, "failed", "its driver disconnected (" + why + ")");
      for (auto& [lid, l] : leases_)
        if (l.owner == p.id) l.owner = 0;
    }
  }

  void on_tick(Endpoint& ep) override {
    auto now = Clock::now();
    std::vector<std::pair<ConnId, std::string>> expired;
    for (const auto& [conn, index] : node_by_conn_) {
      auto silent = now - nodes_[index].last_heartbeat;
      if (silent > opts_.node_timeout)
        expired.emplace_back(conn, "no heartbeat for " +
                                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(silent).count()) + " ms");
    }
    for (auto& [conn, why] : expired) ep.close(conn, why);
    for (const auto& [conn, index] : node_by_conn_)  // reputation grows with healthy uptime
      if (now - nodes_[index].uptime_credited >= std::chrono::hours(1)) {
        nodes_[index].uptime_credited = now;
        reputation(index, sched::Outcome::uptime_hour);
      }
    if (rejoin_grace_until_ != Clock::time_point{} && now >= rejoin_grace_until_) {
      rejoin_grace_until_ = {};
      fail_infeasible_pending(ep);
    }
    for (auto t : reservations_.expire()) {
      reservation_gone(ep, t, "expired");
      clusters_dirty_ = true;
    }
    // A full pass each second: capacity that came back without a release (an expired cluster) is used.
    if (!pending_.empty() && now - last_full_pass_ >= std::chrono::seconds(1)) {
      last_full_pass_ = now;
      grant_pending(ep);
    }
    save_books();
    // A job restored from state whose driver never came back.
    for (auto& [id, j] : jobs_)
      if (j.state == "running" && j.conn == 0 && now - j.orphaned_since > opts_.driver_reconnect)
        end_job(ep, j, "failed", "its driver did not reconnect after the head restarted");
  }

 private:
  void register_node(Endpoint& ep, Peer& p, proto::RegisterNode::Reader r) {
    if (p.role != proto::Role::NODE) return ep.close(p.id, "only nodes register as nodes");
    auto node = proto::read(r.getInfo());
    node.alive = true;
    node.available = node.total;
    for (auto& g : node.gpus) g.free = sched::kOne;
    NodeRec rec;
    rec.conn = p.id;
    rec.host = r.getHost().size() ? std::string(r.getHost()) : p.address;
    rec.last_heartbeat = Clock::now();
    rec.uptime_credited = rec.last_heartbeat;
    auto prev = r.getPreviousIndex();
    bool rejoined = r.getRejoin() && prev < state_.size() && !state_.nodes()[prev].alive &&
                    state_.nodes()[prev].name == std::string(r.getPreviousName());
    if (rejoined) {
      // The same daemon after a head restart or a dropped connection: same identity, its leases still run.
      node.index = prev;
      node.name = state_.nodes()[prev].name;
      // Clusters placed here before a head restart take their bundles out first; leases running inside them
      // go back into their bundle.
      for (const auto& bundle : sched_.bundles_on(prev))
        if (!sched::reserve(node, bundle))
          spdlog::warn("node {} no longer has room for a cluster bundle placed on it", node.name);
      for (auto l : r.getActiveLeases()) {
        auto alloc = proto::read(l.getAllocation());
        alloc.node = prev;
        if (!sched_.adopt_into_bundle(alloc) && !sched::reserve(node, alloc)) continue;
        ConnId owner = 0;
        std::string job = l.getJobId();
        if (auto j = jobs_.find(job); j != jobs_.end()) {
          owner = j->second.conn;
          ++j->second.active_leases;
          if (alloc.gang) j->second.reservations.insert(alloc.gang);
        }
        leases_[l.getLeaseId()] = LeaseRec{job, owner, l.getOwnerLeaseId(), alloc, alloc.gang, Clock::now(), node.price_per_gpu_hour};
        sched_.account(job, alloc);
        ++rec.active_leases;
      }
      state_.replace(prev, std::move(node));
      nodes_[prev] = rec;
      spdlog::info("node {} rejoined from {} with {} running leases", state_.nodes()[prev].name, p.address, rec.active_leases);
      sched_.node_changed();
    } else {
      node.index = static_cast<std::uint32_t>(state_.size());
      std::string base = node.name.empty() ? "node" : node.name;
      node.name = base;
      for (int k = 2; name_taken(node.name); ++k) node.name = base + "-" + std::to_string(k);
      spdlog::info("node {} joined from {}: {}", node.name, p.address, node.describe());
      state_.add(std::move(node));
      sched_.node_changed();
      nodes_.push_back(rec);
    }
    auto index = rejoined ? prev : static_cast<std::uint32_t>(state_.size() - 1);
    capnp::MallocMessageBuilder out;
    auto a = out.initRoot<proto::Envelope>().initNodeAccepted();
    a.setNodeIndex(index);
    a.setName(state_.nodes()[index].name);
    a.setHeartbeatMs(static_cast<std::uint32_t>(opts_.heartbeat.count()));
    a.setObservedHost(p.address);
    node_by_conn_[p.id] = index;
    save_node(index);
    ep.send(p.id, out);
    // GPUs a node found itself arrive unverified: they are challenged at once (declared ones are trusted as
    // declared until `iogrid verify`).
    bool unverified = false;
    for (const auto& g : state_.node(index).gpus) unverified = unverified || !g.verified;
    if (unverified) start_verify(ep, index, opts_.verify_size, 0);
    grant_pending(ep);
  }

  bool name_taken(const std::string& name) const {
    for (const auto& n : state_.nodes())
      if (n.alive && n.name == name) return true;
    return false;
  }

  void heartbeat(Peer& p, proto::Heartbeat::Reader h) {
    auto it = node_by_conn_.find(p.id);
    if (it == node_by_conn_.end()) return;
    auto& n = nodes_[it->second];
    n.last_heartbeat = Clock::now();
    n.store_used = h.getStoreUsedBytes();
    n.store_capacity = h.getStoreCapacityBytes();
    n.store_objects = h.getStoreObjects();
    n.spilled = h.getSpilledBytes();
    n.telemetry.clear();
    for (auto t : h.getTelemetry()) n.telemetry.push_back(proto::read(t));
  }

  void node_dead(Endpoint& ep, std::uint32_t index, const std::string& why) {
    if (!state_.node(index).alive) return;
    auto dead = state_.node(index);
    dead.alive = false;
    dead.available = {};
    dead.reputation = sched::update_reputation(dead.reputation, sched::Outcome::node_died);
    state_.replace(index, std::move(dead));
    sched_.node_changed();
    const auto& n = state_.node(index);
    spdlog::warn("node {} is dead: {}", n.name, why);
    save_node(index);
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.alloc.node == index) {
        charge(it->second);
        reputation(index, sched::Outcome::task_failed);
        sched_.forget(it->second.job, it->second.alloc);
        lease_failed(ep, it->second.owner, it->second.owner_lease, "node " + n.name + " died", false, true);
        if (auto j = jobs_.find(it->second.job); j != jobs_.end() && j->second.active_leases > 0) --j->second.active_leases;
        it = leases_.erase(it);
      } else {
        ++it;
      }
    }
    nodes_[index].active_leases = 0;
    if (!nodes_[index].objects.empty())
      spdlog::warn("{} object copies were on node {}; their owners rebuild what they still need", nodes_[index].objects.size(), n.name);
    nodes_[index].objects.clear();
    capnp::MallocMessageBuilder out;
    auto d = out.initRoot<proto::Envelope>().initNodeDead();
    d.setNodeIndex(index);
    d.setName(n.name);
    d.setReason(why);
    auto frame = transport::encode_frame(out);
    for (const auto& [conn, o] : owners_) ep.send_frame(conn, frame);
    // Requests that only that node could ever satisfy now fail.
    fail_infeasible_pending(ep);
  }

  void register_job(Endpoint& ep, Peer& p, proto::RegisterJob::Reader r) {
    if (p.role != proto::Role::DRIVER && p.role != proto::Role::WORKER) return ep.close(p.id, "only drivers register jobs");
    OwnerRec o;
    o.host = r.getOwnerHost().size() ? std::string(r.getOwnerHost()) : p.address;
    if (o.host == "0.0.0.0" || o.host.empty()) o.host = p.address;
    o.port = r.getOwnerPort();
    std::string parent = r.getParentJob();
    std::string resume = r.getResumeJob();
    bool need_code = false;
    if (!resume.empty()) {
      auto j = jobs_.find(resume);
      if (j == jobs_.end() || j->second.state != "running") {
        capnp::MallocMessageBuilder out;
        auto e = out.initRoot<proto::Envelope>().initJobEnded();
        e.setJobId(resume);
        e.setReason(j == jobs_.end() ? "the head does not know this job" : "the job has " + j->second.state);
        return ep.send(p.id, out);
      }
      j->second.conn = p.id;
      j->second.owner_host = o.host;
      j->second.owner_port = o.port;
      for (auto& [id, l] : leases_)
        if (l.job == resume) l.owner = p.id;
      need_code = !std::filesystem::exists(code_dir_ / j->second.code_hash);
      o.job = resume;
      spdlog::info("job {} resumed by {}", resume, j->second.driver);
      save_job(j->second);
    } else if (!parent.empty()) {
      if (!jobs_.count(parent)) return ep.close(p.id, "unknown job " + parent);
      o.job = parent;
    } else {
      JobRec j;
      j.id = "job-" + std::to_string(++job_counter_);
      if (store_) store_->put_counter("job", job_counter_);
      j.conn = p.id;
      j.driver = p.name + "@" + p.address;
      j.code_hash = r.getSpec().getCodeHash();
      sched::Share share;
      if (std::string user = r.getSpec().getUser(); !user.empty()) share.user = user;
      if (r.getSpec().getWeight() > 0) share.weight = r.getSpec().getWeight();
      if (auto uw = opts_.user_weights.find(share.user); uw != opts_.user_weights.end()) share.user_weight = uw->second;
      sched_.set_share(j.id, share);
      j.user = share.user;
      j.weight = share.weight;
      j.owner_host = o.host;
      j.owner_port = o.port;
      j.started = unix_ms();
      need_code = !std::filesystem::exists(code_dir_ / j.code_hash);
      o.job = j.id;
      spdlog::info("job {} started by {} (code {})", j.id, j.driver, j.code_hash.substr(0, 12));
      if (std::string sub = r.getSubmissionId(); !sub.empty()) {
        submissions_[sub] = j.id;
        if (auto early = logs_.find("submission:" + sub); early != logs_.end()) {
          append_log(j.id, early->second);
          logs_.erase(early);
        }
      }
      save_job(j);
      jobs_[j.id] = j;
    }
    owners_[p.id] = o;
    capnp::MallocMessageBuilder out;
    auto a = out.initRoot<proto::Envelope>().initJobAccepted();
    a.setJobId(o.job);
    a.setNeedCode(need_code);
    a.setObservedHost(p.address);
    ep.send(p.id, out);
  }

  void store_code(Endpoint& ep, Peer& p, proto::Code::Reader c) {
    std::string hash = c.getHash();
    auto b = c.getBytes();
    std::string bytes(reinterpret_cast<const char*>(b.begin()), b.size());
    if (transport::sha256_hex(bytes) != hash) {
      spdlog::warn("closing connection from {}: uploaded code does not match its hash", p.address);
      return ep.close(p.id, "uploaded code does not match its hash");
    }
    auto path = code_dir_ / hash;
    auto tmp = path;
    tmp += ".part";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    std::filesystem::rename(tmp, path);
    spdlog::info("stored job code {} ({} bytes)", hash.substr(0, 12), bytes.size());
    // Nodes that asked for it before it arrived.
    auto waiting = code_waiters_[hash];
    code_waiters_.erase(hash);
    for (auto conn : waiting) send_code(ep, *ep.peer(conn), hash);
  }

  void send_code(Endpoint& ep, Peer& p, const std::string& hash) {
    auto path = code_dir_ / hash;
    if (!std::filesystem::exists(path)) {
      code_waiters_[hash].push_back(p.id);
      return;
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto bytes = ss.str();
    capnp::MallocMessageBuilder out;
    auto c = out.initRoot<proto::Envelope>().initCode();
    c.setHash(hash);
    c.setBytes(bytes_of(bytes));
    ep.send(p.id, out);
  }

  void lease_failed(Endpoint& ep, ConnId owner, std::uint64_t lease, const std::string& reason, bool infeasible,
                    bool retry = false) {
    if (!ep.peer(owner)) return;
    capnp::MallocMessageBuilder out;
    auto f = out.initRoot<proto::Envelope>().initLeaseFailed();
    f.setLeaseId(lease);
    f.setReason(reason);
    f.setInfeasible(infeasible);
    f.setRetry(retry);
    ep.send(owner, out);
  }

  void lease_request(Endpoint& ep, Peer& p, proto::LeaseRequest::Reader r) {
    auto owner = owners_.find(p.id);
    if (owner == owners_.end()) return ep.close(p.id, "lease request before registering a job");
    PendingLease pl{p.id, r.getLeaseId(), proto::read(r.getRequest())};
    std::string why;
    if (!sched_.feasible(pl.request, &why) && (pl.request.reservation || Clock::now() >= rejoin_grace_until_)) {
      ++infeasible_;
      return lease_failed(ep, p.id, pl.owner_lease, "iogrid: " + why, true);
    }
    if (pl.request.reservation)
      if (auto j = jobs_.find(owner->second.job); j != jobs_.end()) j->second.reservations.insert(pl.request.reservation);
    auto d = sched_.submit_or_place(owner->second.job, pl.request, pl.request.priority);
    pending_.emplace(d.ticket, std::move(pl));
    hand_out(ep, std::move(d.grants));
  }

  template <class Pred>
  void drop_pending(Pred pred) {
    for (auto q = pending_.begin(); q != pending_.end();) {
      if (pred(q->second)) {
        sched_.cancel(q->first);
        q = pending_.erase(q);
      } else {
        ++q;
      }
    }
  }

  // Sends the lease the scheduler granted; false when its owner or job is gone (the caller gives it back).
  bool send_grant(Endpoint& ep, const PendingLease& pl, const sched::Allocation& grant) {
    auto owner = owners_.find(pl.owner);
    if (owner == owners_.end()) return false;
    auto job = jobs_.find(owner->second.job);
    if (job == jobs_.end() || job->second.state != "running") return false;
    const auto node = &grant.node;
    const auto alloc = &grant;
    auto id = next_lease_id();
    leases_[id] = LeaseRec{job->second.id, pl.owner, pl.owner_lease, *alloc, pl.request.reservation, Clock::now(),
                           state_.node(*node).price_per_gpu_hour};
    ++job->second.leases_granted;
    ++job->second.active_leases;
    ++nodes_[*node].active_leases;
    capnp::MallocMessageBuilder out;
    auto s = out.initRoot<proto::Envelope>().initStartLease();
    s.setLeaseId(id);
    s.setOwnerLeaseId(pl.owner_lease);
    s.setJobId(job->second.id);
    s.setCodeHash(job->second.code_hash);
    s.setOwnerHost(owner->second.host);
    s.setOwnerPort(owner->second.port);
    proto::write(s.initAllocation(), *alloc);
    ep.send(nodes_[*node].conn, out);
    return true;
  }

  // A full pass (nodes joined or changed).
  void grant_pending(Endpoint& ep) {
    if (!pending_.empty()) hand_out(ep, sched_.schedule());
  }

  void hand_out(Endpoint& ep, std::vector<sched::Grant> grants) {
    for (auto& g : grants) {
      auto it = pending_.find(g.ticket);
      if (it == pending_.end() || !send_grant(ep, it->second, g.allocations.front()))
        sched_.release(g.job, g.allocations.front());
      if (it != pending_.end()) pending_.erase(it);
    }
  }

  void fail_infeasible_pending(Endpoint& ep) {
    drop_pending([&](const PendingLease& q) {
      std::string why;
      if (sched_.feasible(q.request, &why)) return false;
      lease_failed(ep, q.owner, q.owner_lease, "iogrid: " + why, true);
      return true;
    });
  }

  void lease_done(Endpoint& ep, std::uint64_t id) {
    auto it = leases_.find(id);
    if (it == leases_.end()) return;
    auto alloc = it->second.alloc;
    bool freed = alloc.node < state_.size() && state_.node(alloc.node).alive;
    charge(it->second);
    if (freed) {
      reputation(alloc.node, sched::Outcome::task_succeeded);
      sched_.release(it->second.job, alloc);
      if (nodes_[alloc.node].active_leases > 0) --nodes_[alloc.node].active_leases;
    }
    if (auto j = jobs_.find(it->second.job); j != jobs_.end() && j->second.active_leases > 0) --j->second.active_leases;
    // An owner whose worker never attached (it failed to start) asks again; others ignore this.
    lease_failed(ep, it->second.owner, it->second.owner_lease, "the lease ended on its node", false, true);
    leases_.erase(it);
    if (freed && !pending_.empty()) hand_out(ep, sched_.schedule_freed(alloc.node));
  }

  // Keeps the last kMaxLog bytes of each job's output (driver and workers), in memory and under --state.
  void append_log(const std::string& job, const std::string& text) {
    auto& buf = logs_[job];
    buf += text;
    if (buf.size() > kMaxLog) buf.erase(0, buf.size() - kMaxLog);
    if (!opts_.state_dir.empty() && job.rfind("submission:", 0) != 0) {
      auto dir = std::filesystem::path(opts_.state_dir) / "logs";
      std::filesystem::create_directories(dir);
      std::ofstream out(dir / (job + ".log"), std::ios::app | std::ios::binary);
      out << text;
    }
  }

  void job_finished(Endpoint& ep, Peer& p, const std::string& reason) {
    auto o = owners_.find(p.id);
    if (o == owners_.end()) return;
    auto j = jobs_.find(o->second.job);
    if (j != jobs_.end() && j->second.conn == p.id) end_job(ep, j->second, "finished", reason.empty() ? "its driver finished" : reason);
  }

  void end_job(Endpoint& ep, JobRec& j, const std::string& state, const std::string& why) {
    if (j.state != "running") return;
    j.state = state;
    j.ended = unix_ms();
    spdlog::info("job {} {}: {}", j.id, state, why);
    save_job(j);
    drop_pending([&](const PendingLease& q) {
      auto o = owners_.find(q.owner);
      return o == owners_.end() || o->second.job == j.id;
    });
    capnp::MallocMessageBuilder out;
    auto e = out.initRoot<proto::Envelope>().initJobEnded();
    e.setJobId(j.id);
    e.setReason(why);
    auto frame = transport::encode_frame(out);
    for (const auto& [conn, index] : node_by_conn_) ep.send_frame(conn, frame);
    // The job's owners stop too (the driver itself only when someone else ended its job).
    for (const auto& [conn, o] : owners_)
      if (o.job == j.id && (conn != j.conn || state == "stopped")) ep.send_frame(conn, frame);
  }

  // Writes the ledger and the clusters to the state when they changed.
  void save_books() {
    if (!store_) return;
    if (ledger_dirty_) store_->put_document("ledger", ledger_.save());
    if (clusters_dirty_) store_->put_document("clusters", reservations_.save());
    ledger_dirty_ = clusters_dirty_ = false;
  }

  // Charges a lease that ended (or was lost with its node) to the ledger.
  void charge(const LeaseRec& l) {
    if (l.alloc.node >= state_.size() || l.alloc.gpus.empty()) return;
    const double secs = std::chrono::duration<double>(Clock::now() - l.start).count();
    ledger_.lease(l.job, l.reservation ? reservation_name(l.reservation) : "", state_.node(l.alloc.node).name,
                  sched::gpu_count(l.alloc), secs, l.price);
    ledger_dirty_ = true;
  }

  void reputation(std::uint32_t node, sched::Outcome o) {
    if (node >= state_.size()) return;
    state_.set_reputation(node, sched::update_reputation(state_.node(node).reputation, o));
  }

  void admin(Endpoint& ep, Peer& p, proto::AdminRequest::Reader r) {
    capnp::MallocMessageBuilder out;
    auto reply = out.initRoot<proto::Envelope>().initAdminReply();
    reply.setRequestId(r.getRequestId());
    const std::string command = r.getCommand();
    if (command == "verify") return start_verify_command(ep, p, r);
    try {
      auto args = nlohmann::json::parse(std::string(r.getArgs()).empty() ? std::string("{}") : std::string(r.getArgs()));
      auto owner = owners_.find(p.id);
      auto body = reservations_.admin(command, args, owner != owners_.end() ? owner->second.job : p.name);
      if (command == "cluster.delete") reservation_gone(ep, parse_reservation(args.value("id", "")), "deleted");
      if (command == "cluster.create" || command == "cluster.delete") {
        spdlog::info("{} from {}: {}", command, p.name, body.dump());
        ledger_dirty_ = clusters_dirty_ = true;
        save_books();
      }
      reply.setOk(true);
      reply.setBody(body.dump());
    } catch (const std::exception& e) {
      reply.setOk(false);
      reply.setError(e.what());
    }
    ep.send(p.id, out);
    if (command == "cluster.delete" || command == "cluster.create") grant_pending(ep);
  }

  // A reservation ended: work queued for it fails, jobs that ran in it stop.
  void reservation_gone(Endpoint& ep, std::uint64_t t, const std::string& how) {
    const auto name = reservation_name(t);
    drop_pending([&](const PendingLease& q) {
      if (q.request.reservation != t) return false;
      lease_failed(ep, q.owner, q.owner_lease, "iogrid: cluster " + name + " was " + how, true);
      return true;
    });
    for (auto& [id, j] : jobs_)
      if (j.state == "running" && j.reservations.count(t)) end_job(ep, j, "stopped", "its cluster " + name + " was " + how);
  }

  // ---- GPU verification (gpu/verify/challenge.hpp) ----
  struct Verification {
    std::uint32_t node = 0, device = 0;
    gpu::verify::Challenge challenge;
    gpu::verify::Commitment commitment;
    std::vector<int> rows;
    std::uint64_t batch = 0;  // the admin request waiting for it, 0: none (a join)
  };
  struct VerifyBatch {
    ConnId requester = 0;
    std::uint64_t request_id = 0;
    std::size_t remaining = 0;
    nlohmann::json results = nlohmann::json::array();
  };

  // Starts one challenge per GPU of `node`; returns how many.
  std::size_t start_verify(Endpoint& ep, std::uint32_t node, int n, std::uint64_t batch) {
    const auto& nd = state_.node(node);
    if (!nd.alive || nd.gpus.empty()) return 0;
    std::random_device rd;
    for (std::uint32_t d = 0; d < nd.gpus.size(); ++d) {
      Verification v;
      v.node = node;
      v.device = d;
      v.challenge = {(std::uint64_t(rd()) << 32) ^ rd(), n};
      v.batch = batch;
      const auto id = ++verify_counter_;
      capnp::MallocMessageBuilder out;
      auto c = out.initRoot<proto::Envelope>().initVerifyChallenge();
      c.setId(id);
      c.setSeed(v.challenge.seed);
      c.setN(static_cast<std::uint32_t>(n));
      c.setDevice(d);
      verifications_[id] = v;
      ep.send(nodes_[node].conn, out);
    }
    spdlog::info("verifying the {} GPU(s) of {} (GEMM {}^3)", nd.gpus.size(), nd.name, n);
    return nd.gpus.size();
  }

  void start_verify_command(Endpoint& ep, Peer& p, proto::AdminRequest::Reader r) {
    auto fail = [&](const std::string& why) {
      capnp::MallocMessageBuilder out;
      auto reply = out.initRoot<proto::Envelope>().initAdminReply();
      reply.setRequestId(r.getRequestId());
      reply.setOk(false);
      reply.setError(why);
      ep.send(p.id, out);
    };
    nlohmann::json args;
    try {
      args = nlohmann::json::parse(std::string(r.getArgs()).empty() ? std::string("{}") : std::string(r.getArgs()));
    } catch (const std::exception& e) {
      return fail(std::string("iogrid: bad arguments: ") + e.what());
    }
    const std::string only = args.value("node", "");
    const int n = args.value("size", 8192);
    if (n < 16 || n > 32768) return fail("iogrid: --size must be between 16 and 32768");
    const auto batch = ++verify_counter_;
    auto& b = batches_[batch];
    b.requester = p.id;
    b.request_id = r.getRequestId();
    for (const auto& [conn, index] : node_by_conn_)
      if (only.empty() || state_.node(index).name == only) b.remaining += start_verify(ep, index, n, batch);
    if (b.remaining == 0) {
      batches_.erase(batch);
      return fail(only.empty() ? "iogrid: no live node has GPUs to verify"
                               : "iogrid: no live node named '" + only + "' with GPUs (see iogrid status)");
    }
  }

  void verify_commit(Endpoint& ep, Peer& p, proto::VerifyCommit::Reader m) {
    auto it = verifications_.find(m.getId());
    if (it == verifications_.end() || nodes_[it->second.node].conn != p.id) return;
    if (std::string err = m.getError(); !err.empty()) {
      gpu::verify::Verdict v;
      v.reason = "the node could not run the challenge: " + err;
      return verify_done(ep, it, v);
    }
    auto root = m.getRoot();
    if (root.size() != it->second.commitment.root.size()) {
      gpu::verify::Verdict v;
      v.reason = "wrong answer: a malformed commitment";
      return verify_done(ep, it, v);
    }
    std::copy(root.begin(), root.end(), it->second.commitment.root.begin());
    it->second.commitment.seconds = m.getSeconds();
    std::random_device rd;  // drawn only now, after the commitment
    it->second.rows = gpu::verify::draw_rows(it->second.challenge.n, 16, (std::uint64_t(rd()) << 32) ^ rd());
    capnp::MallocMessageBuilder out;
    auto o = out.initRoot<proto::Envelope>().initVerifyOpen();
    o.setId(m.getId());
    auto rows = o.initRows(static_cast<unsigned>(it->second.rows.size()));
    for (unsigned i = 0; i < it->second.rows.size(); ++i) rows.set(i, static_cast<std::uint32_t>(it->second.rows[i]));
    ep.send(p.id, out);
  }

  void verify_rows(Endpoint& ep, Peer& p, proto::VerifyRows::Reader m) {
    auto it = verifications_.find(m.getId());
    if (it == verifications_.end() || nodes_[it->second.node].conn != p.id) return;
    std::vector<gpu::verify::Prover::Opening> openings;
    for (auto r : m.getRows()) {
      gpu::verify::Prover::Opening o;
      o.row = static_cast<int>(r.getRow());
      for (auto x : r.getValues()) o.values.push_back(x);
      for (auto h : r.getPath()) {
        gpu::verify::Hash hash{};
        if (h.size() == hash.size()) std::copy(h.begin(), h.end(), hash.begin());
        o.path.push_back(hash);
      }
      openings.push_back(std::move(o));
    }
    const auto& v = it->second;
    const auto& gpu = state_.node(v.node).gpus.at(v.device);
    verify_done(ep, it, gpu::verify::check(v.challenge, v.commitment, v.rows, openings, gpu.model));
  }

  void verify_done(Endpoint& ep, std::map<std::uint64_t, Verification>::iterator it, const gpu::verify::Verdict& verdict) {
    const auto v = it->second;
    verifications_.erase(it);
    if (v.node < state_.size() && v.device < state_.node(v.node).gpus.size()) {
      auto node = state_.node(v.node);
      auto& g = node.gpus[v.device];
      g.verified = verdict.verified;
      if (verdict.verified) g.tflops = verdict.tflops;
      const std::string line = "GPU " + std::to_string(v.device) + " (" + g.model + "): " +
                               (verdict.verified ? "" : "unverified, ") + verdict.reason;
      node.reputation = sched::update_reputation(
          node.reputation, verdict.verified ? sched::Outcome::verification_passed : sched::Outcome::verification_failed);
      state_.replace(v.node, std::move(node));
      sched_.node_changed();
      save_node(v.node);
      auto& text = nodes_[v.node].verification;
      // One line per device, the newest replacing the old one.
      std::string kept;
      std::istringstream lines(text);
      for (std::string l; std::getline(lines, l);)
        if (l.rfind("GPU " + std::to_string(v.device) + " ", 0) != 0) kept += l + "\n";
      text = kept + line;
      spdlog::info("verification of {}: {}", state_.node(v.node).name, line);
      if (verdict.verified) grant_pending(ep);
    }
    if (!v.batch) return;
    auto b = batches_.find(v.batch);
    if (b == batches_.end()) return;
    b->second.results.push_back({{"node", v.node < state_.size() ? state_.node(v.node).name : std::string("?")},
                                 {"device", v.device},
                                 {"verified", verdict.verified},
                                 {"tflops", verdict.tflops},
                                 {"reason", verdict.reason}});
    if (--b->second.remaining > 0) return;
    capnp::MallocMessageBuilder out;
    auto reply = out.initRoot<proto::Envelope>().initAdminReply();
    reply.setRequestId(b->second.request_id);
    reply.setOk(true);
    reply.setBody(b->second.results.dump());
    if (ep.peer(b->second.requester)) ep.send(b->second.requester, out);
    batches_.erase(b);
  }

  void stop_job(Endpoint& ep, Peer& p, const std::string& id) {
    auto j = jobs_.find(id);
    if (j == jobs_.end()) {
      capnp::MallocMessageBuilder out;
      out.initRoot<proto::Envelope>().initReject().setReason("no job " + id);
      return ep.send(p.id, out);
    }
    spdlog::info("job {} stopped by {} from {}", id, p.name, p.address);
    end_job(ep, j->second, "stopped", "stopped by an operator");
    status(ep, p);
  }

  void status(Endpoint& ep, Peer& p) {
    capnp::MallocMessageBuilder out;
    fill_status(ep, out.initRoot<proto::Envelope>().initStatusReply());
    ep.send(p.id, out);
  }

  void fill_status(Endpoint& ep, proto::StatusReply::Builder s) {
    s.setHeadName(ep.name());
    s.setPendingLeases(static_cast<std::uint32_t>(pending_.size()));
    std::uint32_t alive = 0, dead = 0;
    for (const auto& n : state_.nodes()) (n.alive ? alive : dead)++;
    s.setDeadNodes(dead);
    auto ns = s.initNodes(alive);
    auto now = Clock::now();
    unsigned i = 0;
    for (const auto& n : state_.nodes()) {
      if (!n.alive) continue;
      proto::write(ns[i].initInfo(), n);
      ns[i].setHost(nodes_[n.index].host);
      ns[i].setActiveLeases(nodes_[n.index].active_leases);
      ns[i].setStoreUsedBytes(nodes_[n.index].store_used);
      ns[i].setStoreCapacityBytes(nodes_[n.index].store_capacity);
      ns[i].setStoreObjects(nodes_[n.index].store_objects);
      ns[i].setSpilledBytes(nodes_[n.index].spilled);
      std::uint64_t bytes = 0;
      for (const auto& [k, size] : nodes_[n.index].objects) bytes += size;
      ns[i].setDirectoryObjects(nodes_[n.index].objects.size());
      ns[i].setDirectoryBytes(bytes);
      ns[i].setVerification(nodes_[n.index].verification);
      const auto& tel = nodes_[n.index].telemetry;
      auto tl = ns[i].initTelemetry(static_cast<unsigned>(tel.size()));
      for (unsigned k = 0; k < tel.size(); ++k) proto::write(tl[k], tel[k]);
      ns[i].setLastHeartbeatMs(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(now - nodes_[n.index].last_heartbeat).count()));
      ++i;
    }
    auto js = s.initJobs(static_cast<unsigned>(jobs_.size()));
    i = 0;
    for (const auto& [id, j] : jobs_) {
      js[i].setJobId(j.id);
      js[i].setDriver(j.driver);
      js[i].setState(j.state);
      js[i].setLeasesGranted(j.leases_granted);
      js[i].setActiveLeases(j.active_leases);
      js[i].setStartedUnixMs(j.started);
      js[i].setEndedUnixMs(j.ended);
      ++i;
    }
  }

  HeadOptions opts_;
  sched::Scheduler sched_;                       // the queue, fair share and gangs around the node table
  sched::ClusterState& state_ = sched_.cluster();
  sched::Ledger ledger_;
  ReservationBook reservations_{sched_, ledger_};
  bool ledger_dirty_ = false, clusters_dirty_ = false;
  std::map<std::uint64_t, Verification> verifications_;
  std::map<std::uint64_t, VerifyBatch> batches_;
  std::uint64_t verify_counter_ = 0;
  Clock::time_point last_full_pass_{};
  std::filesystem::path code_dir_;
  std::vector<NodeRec> nodes_;
  std::unordered_map<ConnId, std::uint32_t> node_by_conn_;
  std::map<std::string, JobRec> jobs_;
  std::unordered_map<ConnId, OwnerRec> owners_;
  std::unordered_map<std::uint64_t, PendingLease> pending_;  // by scheduler ticket
  std::unordered_map<std::uint64_t, LeaseRec> leases_;
  std::map<std::string, std::vector<ConnId>> code_waiters_;
  std::map<std::string, std::string> kv_;
  std::uint64_t job_counter_ = 0, lease_counter_ = 0, lease_reserved_ = 0, infeasible_ = 0;
  std::unique_ptr<HeadStore> store_;
  static constexpr std::chrono::seconds kRejoinGrace{10};
  static constexpr std::size_t kMaxLog = 4u << 20;
  std::map<std::string, std::string> submissions_;  // submission id -> job id
  std::map<std::string, std::string> logs_;
  Clock::time_point rejoin_grace_until_{};
};

}  // namespace

std::shared_ptr<transport::Service> make_head_service(HeadOptions opts) {
  return std::make_shared<HeadService>(std::move(opts));
}

std::string head_status_json(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head) {
  auto p = std::make_shared<std::promise<std::string>>();
  auto f = p->get_future();
  transport::post(endpoint, [p, head](Endpoint& ep) { p->set_value(static_cast<HeadService&>(*head).status_text(ep)); });
  if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw Error("iogrid: the head did not answer within 5 s");
  return f.get();
}

}  // namespace iogrid::runtime::cluster
