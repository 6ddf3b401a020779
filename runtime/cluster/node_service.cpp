#include "runtime/cluster/node_service.hpp"
#include "runtime/cluster/tunnel_ends.hpp"

#include "gpu/devices.hpp"
#include "gpu/kernels/ops.hpp"
#include "gpu/verify/challenge.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <sstream>
#include <set>
#include <unordered_map>

#include "runtime/cluster/code_transfer.hpp"
#include "runtime/cluster/io_thread.hpp"
#include "runtime/cluster/relay_server.hpp"
#include "runtime/transport/liveness.hpp"
#include "runtime/transport/reachability.hpp"
#include "runtime/cluster/store_server.hpp"
#include "runtime/cluster/worker_env.hpp"
#include "runtime/object_store.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/frame.hpp"
#include "runtime/proto/convert.hpp"
#include "runtime/transport/auth.hpp"
#include "iogrid/core/errors.hpp"
#include <nlohmann/json.hpp>

extern char** environ;

namespace iogrid::runtime::cluster {

namespace {

// --telemetry-file: a JSON array of gpu::Telemetry objects, read at each heartbeat (a file being rewritten, or
// malformed, gives none this time and a warning once).
std::vector<gpu::Telemetry> telemetry_from_file(const std::string& path) {
  static bool warned = false;
  std::vector<gpu::Telemetry> out;
  try {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read it");
    auto doc = nlohmann::json::parse(in);
    for (const auto& t : doc) {
      gpu::Telemetry g;
      g.index = t.value("index", 0);
      g.temperature_c = t.value("temperature_c", 0.0);
      g.power_w = t.value("power_w", 0.0);
      g.power_limit_w = t.value("power_limit_w", 0.0);
      g.utilization_pct = t.value("utilization_pct", 0.0);
      g.memory_used_gib = t.value("memory_used_gib", 0.0);
      g.sm_clock_mhz = t.value("sm_clock_mhz", 0);
      g.memory_clock_mhz = t.value("memory_clock_mhz", 0);
      out.push_back(g);
    }
    warned = false;
  } catch (const std::exception& e) {
    if (!warned) spdlog::warn("--telemetry-file {}: {} (no telemetry sent until it reads)", path, e.what());
    warned = true;
    out.clear();
  }
  return out;
}

using transport::ConnId;
using transport::Endpoint;
using transport::Peer;
using Clock = std::chrono::steady_clock;

struct Lease {
  std::uint64_t id = 0;          // the head's id
  std::uint64_t owner_lease = 0;
  std::string job;
  std::string code_hash;
  std::string owner_host;
  std::uint16_t owner_port = 0;
  std::string relay_target;      // set: the owner is reached through the head's relay, at relay_port
  std::uint16_t relay_port = 0;
  bool owner_checking = false;   // with relay_target: the head did not know yet; the worker tries owner_host first
  sched::Allocation alloc;
};

// A job's worker process on this node (at most one per job: every lease of the job here is a thread of it).
struct WorkerProc {
  pid_t pid = 0;
  std::string job;
  ConnId conn = 0;                         // 0 until it has connected
  std::map<std::uint64_t, Lease> leases;   // the leases it serves, by the head's id
  bool stopping = false;                   // asked to exit (idle): takes no more leases
  Clock::time_point idle_since = Clock::now();
  bool busy() const { return !leases.empty(); }
};

class NodeService final : public transport::Service {
 public:
  explicit NodeService(NodeDaemonOptions o) : opts_(std::move(o)) {
    if (opts_.work_dir.empty())
      opts_.work_dir = (std::filesystem::temp_directory_path() / ("iogrid-node-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(code_dir());
    std::filesystem::create_directories(log_dir());
    auto capacity = opts_.object_store_bytes > 0 ? opts_.object_store_bytes : physical_bytes() / 4;
    store_ = std::make_shared<ObjectStore>(opts_.node.name, capacity, std::filesystem::path(opts_.work_dir) / "spill");
    data_ = serve_store(opts_.token, store_, true, transport::make_tls_context(opts_.tls), [this](std::uint64_t key) {
      // Freed by its owner: the head's directory forgets this copy (sent from the endpoint's thread).
      if (self_) transport::post(self_, [this, key](Endpoint& ep) { objects_removed(ep, {key}); });
    });
    liveness_ = std::make_unique<transport::LivenessSender>(opts_.token, opts_.head_host, opts_.head_port,
                                                             std::chrono::milliseconds(250));
    tunnels_ = std::make_unique<TunnelEnds>(opts_.allow_tunnel, opts_.token);
  }

  ~NodeService() override { relay_.reset(); }  // its thread calls into this service: stopped first

  // The operator's relay (--relay), once the endpoint runs: its asks go to the head (which knows the targets).
  void start_relay() {
    if (opts_.relay_port < 0) return;
    RelayOptions ro;
    ro.token = opts_.token;
    ro.bind = opts_.relay_bind;
    ro.port = static_cast<std::uint16_t>(opts_.relay_port);
    ro.max_bytes = opts_.relay_max_bytes;
    ro.ask_target = [this, self = self_](const std::string& target, const std::string& session, bool punch) {
      transport::post(self, [this, target, session, punch](Endpoint& ep) {
        if (!head_ || !joined_) return relay_refused(session, "the relay's node is not joined to the head");
        capnp::MallocMessageBuilder out;
        auto a = out.initRoot<proto::Envelope>().initRelayAsk();
        a.setTarget(target);
        a.setSession(session);
        a.setPunch(punch);
        ep.send(head_, out);
      });
      return true;
    };
    try {
      relay_ = std::make_unique<RelayServer>(std::move(ro));
      spdlog::info("relaying for the cluster on port {} (the head uses it once it can dial it)", relay_->port());
      std::cout << "IOGRID_NODE_RELAY_PORT=" << relay_->port() << std::endl;
    } catch (const std::exception& e) {
      spdlog::error("{} (this node relays nothing)", e.what());
    }
  }
  void relay_refused(const std::string& session, const std::string& why) {
    if (relay_) relay_->drop(session, why);
  }

  static std::int64_t physical_bytes() {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? std::int64_t(pages) * size : std::int64_t(8) << 30;
  }

  void on_start(Endpoint& ep) override {
    self_ = ep.handle();
    local_port_ = ep.listen(0, "127.0.0.1");
    start_relay();
    try_connect(ep);
  }

  void on_stop(Endpoint&) override {
    kill_all_workers();
    self_ = nullptr;  // the endpoint holds this service: no reference back, or neither is ever freed
  }

  void on_peer(Endpoint& ep, Peer& p) override {
    if (p.id == head_) {
      capnp::MallocMessageBuilder out;
      auto r = out.initRoot<proto::Envelope>().initRegisterNode();
      proto::write(r.initInfo(), opts_.node);
      r.setDataPort(data_->port());
      r.setLocalHost(transport::local_address_towards(opts_.head_host, opts_.head_port));
      auto ports = r.initAllowTunnel(static_cast<unsigned>(tunnels_->allowed().size()));
      unsigned i = 0;
      for (auto port : tunnels_->allowed()) ports.set(i++, port);
      if (relay_) r.setRelayPort(relay_->port());
      if (!name_.empty()) {
        // Back after losing the head: same identity, and the leases our workers still serve.
        r.setRejoin(true);
        r.setPreviousIndex(index_);
        r.setPreviousName(name_);
        std::vector<const Lease*> active;
        for (const auto& [pid, w] : workers_)
          for (const auto& [id, l] : w.leases) active.push_back(&l);
        for (const auto& l : waiting_code_) active.push_back(&l);
        auto list = r.initActiveLeases(static_cast<unsigned>(active.size()));
        for (unsigned i = 0; i < active.size(); ++i) {
          list[i].setLeaseId(active[i]->id);
          list[i].setJobId(active[i]->job);
          list[i].setOwnerLeaseId(active[i]->owner_lease);
          proto::write(list[i].initAllocation(), active[i]->alloc);
        }
      }
      ep.send(p.id, out);
      // Code still coming was asked of the head we lost: ask this one from where it stopped (a head killed
      // while sending a large executable otherwise leaves its leases waiting forever, holding their CPUs).
      for (auto& [hash, d] : downloads_) {
        d->restart();
        ask_code_chunks(ep, head_, *d);
      }
      return;
    }
    if (p.role != proto::Role::WORKER) return ep.close(p.id, "only worker processes connect to a node");
    pid_t pid = 0;
    try {
      pid = static_cast<pid_t>(std::stol(p.name));
    } catch (...) {
    }
    auto it = workers_.find(pid);
    if (it == workers_.end()) return ep.close(p.id, "unknown worker process");
    it->second.conn = p.id;
    for (const auto& [id, l] : it->second.leases) serve(ep, it->second, l);
  }

  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    using W = proto::Envelope::Which;
    if (p.id == head_) {
      switch (msg.which()) {
        case W::NODE_ACCEPTED: {
          auto a = msg.getNodeAccepted();
          index_ = a.getNodeIndex();
          name_ = a.getName();
          heartbeat_ = std::chrono::milliseconds(std::max<std::uint32_t>(50, a.getHeartbeatMs()));
          observed_host_ = a.getObservedHost();
          use_relay(a.getRelayHost(), a.getRelayPort());
          joined_ = true;
          liveness_->set_node(index_);
          spdlog::info("joined the head at {}:{} as {} (index {})", opts_.head_host, opts_.head_port, name_, index_);
          return;
        }
        case W::START_LEASE: return start_lease(ep, msg.getStartLease());
        case W::RELAY_DIAL: {
          // Someone who cannot dial this node waits at a relay (the head's, or an operator's at d.host): a
          // tunnel to an allowed port, or a pull.
          auto d = msg.getRelayDial();
          const std::string host = d.getHost().size() ? std::string(d.getHost()) : opts_.head_host;
          if (d.getTunnelPort()) tunnels_->open(host, d.getPort(), d.getSession(), d.getTunnelPort());
          else if (d.getData()) data_->serve_dialled(host, d.getPort(), d.getSession(), d.getPunch());
          return;
        }
        case W::RELAY_REFUSED: return relay_refused(msg.getRelayRefused().getSession(), msg.getRelayRefused().getReason());
        case W::USE_RELAY: {
          auto u = msg.getUseRelay();
          use_relay(u.getHost(), u.getPort());
          spdlog::info("the relay this node used is gone: now {}:{}", relay_host_, relay_port_);
          // Its worker processes pull through it too: tell them (at the address this node gives them).
          capnp::MallocMessageBuilder out;
          auto m = out.initRoot<proto::Envelope>().initUseRelay();
          m.setHost(relay_host_);
          m.setPort(relay_port_);
          const auto frame = transport::encode_frame(out);
          for (const auto& [pid, w] : workers_)
            if (w.conn) ep.send_frame(w.conn, frame);
          return;
        }
        case W::CODE: return code_arrived(ep, msg.getCode());
        case W::JOB_ENDED: return job_ended(ep, msg.getJobEnded().getJobId(), msg.getJobEnded().getReason());
        case W::VERIFY_CHALLENGE: return verify_challenge(msg.getVerifyChallenge());
        case W::VERIFY_OPEN: return verify_open(ep, msg.getVerifyOpen());
        default: return;
      }
    }
    if (msg.which() == W::STORE_OBJECT) return store_object(ep, p, msg.getStoreObject());
    if (msg.which() == W::LEASE_BLOCKED) {
      if (!head_) return;
      capnp::MallocMessageBuilder out;
      out.setRoot(msg);
      return ep.send(head_, out);
    }
    if (msg.which() == W::LEASE_DONE) {
      const auto id = msg.getLeaseDone().getLeaseId();
      for (auto& [pid, w] : workers_)
        if (w.conn == p.id && w.leases.erase(id)) {
          lease_over(ep, id);
          if (!w.busy()) w.idle_since = Clock::now();
        }
      return;
    }
    spdlog::warn("closing connection of worker '{}': unexpected message", p.name);
    ep.close(p.id, "unexpected message");
  }

  void on_closed(Endpoint& ep, Peer& p, const std::string& why) override {
    if (p.id == head_) {
      head_ = 0;
      if (joined_) spdlog::error("lost the head ({}); workers keep running, rejoining when it is back", why);
      joined_ = false;
      liveness_->set_node(std::nullopt);
      refused_ = why.rfind("refused", 0) == 0;
      if (refused_) {
        // A wrong token or version does not fix itself: stop with a clear message.
        spdlog::error("the head at {}:{} {}", opts_.head_host, opts_.head_port, why);
        kill_all_workers();
        spdlog::shutdown();
        std::_Exit(1);
      }
      next_connect_ = Clock::now() + opts_.reconnect;
      return;
    }
    for (auto& [pid, w] : workers_)
      if (w.conn == p.id) w.conn = 0;  // the process exit is reaped in on_tick
  }

  void on_tick(Endpoint& ep) override {
    auto now = Clock::now();
    // This daemon's own event loop: a long gap between ticks (a machine starved of CPU, a blocking call) is
    // logged, since the head sees it as missing heartbeats.
    if (last_tick_ != Clock::time_point{} && now - last_tick_ > kStallWarning)
      spdlog::warn("this node's event loop stalled for {} ms (heartbeats were late)",
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - last_tick_).count());
    last_tick_ = now;
    liveness_->loop_ticked();
    reap(ep);
    if (!head_ && now >= next_connect_) try_connect(ep);
    // Connected but never accepted (the head did not answer the handshake or the registration): start over,
    // so a node always finds its way back.
    if (head_ && !joined_ && now - connect_started_ > kJoinTimeout) {
      spdlog::warn("the head at {}:{} did not accept this node within {} s; connecting again", opts_.head_host,
                   opts_.head_port, std::chrono::duration_cast<std::chrono::seconds>(kJoinTimeout).count());
      auto id = head_;
      ep.close(id, "no answer to the registration");
      if (head_ == id) {
        head_ = 0;
        next_connect_ = now + opts_.reconnect;
      }
    }
    if (joined_ && now - last_heartbeat_ >= heartbeat_) {
      last_heartbeat_ = now;
      capnp::MallocMessageBuilder out;
      auto h = out.initRoot<proto::Envelope>().initHeartbeat();
      h.setNodeIndex(index_);
      h.setSequence(++hb_seq_);
      auto st = store_->stats();
      h.setStoreUsedBytes(st.used_bytes);
      h.setStoreCapacityBytes(st.capacity_bytes);
      h.setStoreObjects(st.num_objects);
      h.setSpilledBytes(st.spilled_bytes);
      auto telemetry = opts_.telemetry_file.empty() ? gpu::read_telemetry()  // empty without a driver
                                                    : telemetry_from_file(opts_.telemetry_file);
      auto tl = h.initTelemetry(static_cast<unsigned>(telemetry.size()));
      for (unsigned i = 0; i < telemetry.size(); ++i) proto::write(tl[i], telemetry[i]);
      if (relay_) {
        const auto r = relay_->stats();
        h.setRelaySessions(r.sessions);
        h.setRelayActive(r.active);
        h.setRelayBytes(r.bytes);
        h.setRelayRefused(r.refused);
        h.setRelayPunches(r.punches);
      }
      ep.send(head_, out);
    }
    for (auto& [pid, w] : workers_)
      if (!w.busy() && !w.stopping && now - w.idle_since > opts_.worker_idle) {
        w.stopping = true;
        ::kill(pid, SIGTERM);
      }
    if (joined_ && now - last_log_scan_ >= std::chrono::milliseconds(300)) {
      last_log_scan_ = now;
      forward_logs(ep);
    }
  }

  // Sends what the job's workers printed since the last scan to the head (`iogrid job logs`).
  void forward_logs(Endpoint& ep) {
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(log_dir(), ec)) {
      auto job = f.path().stem().string();
      auto size = std::filesystem::file_size(f.path(), ec);
      if (ec) continue;
      auto& offset = log_offsets_[job];
      if (size <= offset) continue;
      std::ifstream in(f.path(), std::ios::binary);
      in.seekg(static_cast<std::streamoff>(offset));
      std::string text(std::min<std::uintmax_t>(size - offset, 1u << 20), '\0');
      in.read(text.data(), static_cast<std::streamsize>(text.size()));
      text.resize(static_cast<std::size_t>(in.gcount()));
      offset += text.size();
      std::string tagged;
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) tagged += "(" + name_ + ") " + line + "\n";
      capnp::MallocMessageBuilder out;
      auto l = out.initRoot<proto::Envelope>().initJobLog();
      l.setJobId(job);
      l.setText(kj::arrayPtr(reinterpret_cast<const kj::byte*>(tagged.data()), tagged.size()));
      ep.send(head_, out);
    }
  }

 private:
  std::filesystem::path code_dir() const { return std::filesystem::path(opts_.work_dir) / "code"; }
  std::filesystem::path log_dir() const { return std::filesystem::path(opts_.work_dir) / "logs"; }

  void try_connect(Endpoint& ep) {
    try {
      connect_started_ = Clock::now();
      if (!name_.empty()) spdlog::info("connecting to the head at {}:{} to rejoin as {}", opts_.head_host, opts_.head_port, name_);
      head_ = ep.connect(opts_.head_host, opts_.head_port, proto::Role::NODE);
    } catch (const std::exception& e) {
      if (!warned_) spdlog::warn("{}; retrying every {} ms", e.what(), opts_.reconnect.count());
      warned_ = true;
      head_ = 0;
      next_connect_ = Clock::now() + opts_.reconnect;
    }
  }

  void start_lease(Endpoint& ep, proto::StartLease::Reader s) {
    Lease l;
    l.id = s.getLeaseId();
    l.owner_lease = s.getOwnerLeaseId();
    l.job = s.getJobId();
    l.code_hash = s.getCodeHash();
    l.owner_host = s.getOwnerHost();
    l.owner_port = s.getOwnerPort();
    l.relay_target = s.getRelayTarget();
    l.relay_port = s.getRelayPort();
    l.owner_checking = s.getOwnerChecking();
    l.alloc = proto::read(s.getAllocation());
    if (ended_jobs_.count(l.job)) return lease_over(ep, l.id);
    // The job's worker process here takes it as one more thread (served once the process has connected).
    if (auto* w = process_of(l.job)) return add_lease(ep, *w, l);
    if (!std::filesystem::exists(code_dir() / l.code_hash)) {
      waiting_code_.push_back(l);
      if (!downloads_.count(l.code_hash)) {
        auto& d = downloads_[l.code_hash] = std::make_unique<CodeDownload>(code_dir(), l.code_hash);
        ask_code_chunks(ep, head_, *d);
      }
      return;
    }
    spawn_worker(ep, l);
  }

  // A chunk of a job's executable: written and hashed as it comes (cluster/code_transfer.hpp); once whole and
  // checked, the leases waiting for it start.
  void code_arrived(Endpoint& ep, proto::Code::Reader c) {
    const std::string hash = c.getHash();
    auto it = downloads_.find(hash);
    if (it == downloads_.end()) return;
    auto& d = *it->second;
    auto b = c.getBytes();
    switch (d.add(c.getOffset(), c.getTotal(), {reinterpret_cast<const char*>(b.begin()), b.size()})) {
      case CodeDownload::Step::more:
        return ask_code_chunks(ep, head_, d);
      case CodeDownload::Step::done:
        spdlog::info("cached job code {} ({} bytes)", hash.substr(0, 12), d.total());
        downloads_.erase(it);
        return code_ready(ep, hash, true);
      case CodeDownload::Step::failed:
        spdlog::error("job code {} from the head: {}; its leases are returned", hash.substr(0, 12), d.error());
        downloads_.erase(it);
        return code_ready(ep, hash, false);
    }
  }

  void code_ready(Endpoint& ep, const std::string& hash, bool ok) {
    std::deque<Lease> rest;
    for (auto& l : waiting_code_) {
      if (l.code_hash != hash) rest.push_back(l);
      else if (!ok) lease_over(ep, l.id);
      else if (auto* w = process_of(l.job)) add_lease(ep, *w, l);
      else spawn_worker(ep, l);
    }
    waiting_code_.swap(rest);
  }

  // The job's worker process that takes new leases (nullptr: none running).
  WorkerProc* process_of(const std::string& job) {
    for (auto& [pid, w] : workers_)
      if (w.job == job && !w.stopping) return &w;
    return nullptr;
  }

  void add_lease(Endpoint& ep, WorkerProc& w, const Lease& l) {
    w.leases[l.id] = l;
    serve(ep, w, l);
  }

  void spawn_worker(Endpoint& ep, const Lease& l) {
    auto exe = (code_dir() / l.code_hash).string();
    auto log = (log_dir() / (l.job + ".log")).string();
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      if (kv.rfind("IOGRID_", 0) == 0) continue;
      env_strings.push_back(kv);
    }
    env_strings.push_back(std::string(kWorkerEndpointEnv) + "=127.0.0.1:" + std::to_string(local_port_));
    env_strings.push_back(std::string(kWorkerTokenEnv) + "=" + opts_.token);
    env_strings.push_back(std::string(kWorkerJobEnv) + "=" + l.job);
    env_strings.push_back(std::string(kWorkerHeadEnv) + "=" + opts_.head_host + ":" + std::to_string(opts_.head_port));
    if (opts_.tls.enabled()) {
      env_strings.push_back("IOGRID_TLS_CERT=" + opts_.tls.cert);
      env_strings.push_back("IOGRID_TLS_KEY=" + opts_.tls.key);
      env_strings.push_back("IOGRID_TLS_CA=" + opts_.tls.ca);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string arg0 = exe;
    char* argv[] = {arg0.data(), nullptr};
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      // Child: only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
      }
      ::setpgid(0, 0);
      // Workers run at a lower priority than the node daemon, so a machine saturated with user work never
      // starves the daemon's heartbeats (nice 10: the daemon's weight is ~9x a worker's).
      ::setpriority(PRIO_PROCESS, 0, 10);
      ::execve(exe.c_str(), argv, envp.data());
      ::_exit(127);
    }
    if (pid < 0) {
      spdlog::error("cannot start a worker process for {}: fork failed", l.job);
      return lease_over(ep, l.id);
    }
    WorkerProc w;
    w.pid = pid;
    w.job = l.job;
    w.leases[l.id] = l;
    workers_[pid] = w;
    spdlog::debug("started worker process {} for {}", pid, l.job);
  }

  void serve(Endpoint& ep, const WorkerProc& w, const Lease& lease) {
    if (!w.conn) return;  // sent once it connects
    capnp::MallocMessageBuilder out;
    auto s = out.initRoot<proto::Envelope>().initServeLease();
    s.setLeaseId(lease.owner_lease);
    s.setOwnerLeaseId(lease.owner_lease);
    s.setGlobalLeaseId(lease.id);
    s.setJobId(lease.job);
    if (lease.relay_target.empty()) {
      s.setOwnerHost(lease.owner_host);
      s.setOwnerPort(lease.owner_port);
    } else {  // through this node's relay (the head's, at the address this node reaches the head at, or an operator's)
      s.setOwnerHost(relay_port_ ? relay_host_ : opts_.head_host);
      s.setOwnerPort(relay_port_ ? relay_port_ : lease.relay_port);
      s.setRelayTarget(lease.relay_target);
      if (lease.owner_checking) {
        s.setDirectHost(lease.owner_host);
        s.setDirectPort(lease.owner_port);
      }
    }
    s.setNodeName(name_);
    s.setNodeIndex(index_);
    s.setDataHost(observed_host_.empty() ? "127.0.0.1" : observed_host_);
    s.setDataPort(data_->port());
    if (relay_port_) {
      s.setRelayHost(relay_host_);
      s.setRelayPort(relay_port_);
    }
    auto gpus = s.initGpuDevices(static_cast<unsigned>(lease.alloc.gpus.size()));
    for (unsigned i = 0; i < lease.alloc.gpus.size(); ++i) gpus.set(i, lease.alloc.gpus[i].first);
    s.setCpusMilli(static_cast<std::uint32_t>(std::max<sched::Milli>(0, lease.alloc.cpus)));
    auto fractions = s.initGpuFractions(static_cast<unsigned>(lease.alloc.gpus.size()));
    for (unsigned i = 0; i < lease.alloc.gpus.size(); ++i)
      fractions.set(i, static_cast<std::uint32_t>(lease.alloc.gpus[i].second));
    ep.send(w.conn, out);
  }

  void lease_over(Endpoint& ep, std::uint64_t id) {
    if (!head_) return;
    capnp::MallocMessageBuilder out;
    out.initRoot<proto::Envelope>().initLeaseDone().setLeaseId(id);
    ep.send(head_, out);
  }

  // A worker's large result: read it from shared memory into the store, where the data plane serves it.
  // The copy (and any spilling it causes) runs on the node's I/O thread, never on the endpoint's: a 1 GiB
  // object must not hold up heartbeats.
  void store_object(Endpoint&, Peer& p, proto::StoreObject::Reader r) {
    std::string path = r.getPath();
    std::string job = r.getJobId();
    const auto request = r.getRequestId();
    const auto size = r.getSize();
    const auto conn = p.id;
    io_.run([this, path, job, request, size, conn, self = self_] {
      std::uint64_t key = 0;
      std::string error;
      try {
        if (path.find("..") != std::string::npos || path.rfind(object_file_prefix(), 0) != 0)
          throw core::Error("refusing to read " + path + " (not a worker object file)");
        auto buf = core::make_buffer(size);
        {
          std::ifstream in(path, std::ios::binary);
          in.read(reinterpret_cast<char*>(buf->data()), static_cast<std::streamsize>(size));
          if (static_cast<std::uint64_t>(in.gcount()) != size) throw core::Error("short object file " + path);
        }
        std::filesystem::remove(path);
        key = ++object_counter_;
        store_->put(key, buf);
      } catch (const std::exception& e) {
        std::error_code ec;
        std::filesystem::remove(path, ec);
        error = e.what();
      }
      transport::post(self, [this, job, request, size, conn, key, error](Endpoint& ep) {
        capnp::MallocMessageBuilder out;
        auto reply = out.initRoot<proto::Envelope>().initObjectStored();
        reply.setRequestId(request);
        if (!error.empty()) {
          reply.setError(error);
        } else if (ended_jobs_.count(job)) {  // its job ended meanwhile: nobody will free it
          store_->erase(key);
          reply.setError("iogrid: job " + job + " has ended");
        } else {
          objects_by_job_[job].push_back(key);
          reply.setKey(key);
          if (head_) {
            capnp::MallocMessageBuilder added;
            auto a = added.initRoot<proto::Envelope>().initObjectsAdded();
            a.initKeys(1).set(0, key);
            a.initSizes(1).set(0, size);
            a.setJobId(job);
            ep.send(head_, added);
          }
        }
        if (ep.peer(conn)) ep.send(conn, out);
      });
    });
  }

  void job_ended(Endpoint& ep, const std::string& job, const std::string& why) {
    ended_jobs_.insert(job);
    if (auto it = objects_by_job_.find(job); it != objects_by_job_.end()) {
      for (auto key : it->second) store_->erase(key);
      objects_removed(ep, it->second);
      objects_by_job_.erase(it);
    }
    for (auto& [pid, w] : workers_)
      if (w.job == job) ::kill(pid, SIGKILL);
    std::deque<Lease> rest;
    for (auto& l : waiting_code_) {
      if (l.job == job) lease_over(ep, l.id);
      else rest.push_back(l);
    }
    waiting_code_.swap(rest);
    spdlog::info("{} ended ({}); its workers are stopped", job, why);
  }

  void objects_removed(Endpoint& ep, const std::vector<std::uint64_t>& keys) {
    if (!head_ || keys.empty()) return;
    capnp::MallocMessageBuilder out;
    auto list = out.initRoot<proto::Envelope>().initObjectsRemoved().initKeys(static_cast<unsigned>(keys.size()));
    for (unsigned i = 0; i < keys.size(); ++i) list.set(i, keys[i]);
    ep.send(head_, out);
  }

  void reap(Endpoint& ep) {
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = workers_.find(pid);
      if (it == workers_.end()) continue;
      auto& w = it->second;
      if (w.busy()) {
        if (!ended_jobs_.count(w.job)) {
          if (WIFSIGNALED(status))
            spdlog::warn("worker process {} of {} died from signal {} while serving {} lease(s)", pid, w.job,
                         WTERMSIG(status), w.leases.size());
          else
            spdlog::warn("worker process {} of {} exited with status {} while serving {} lease(s)", pid, w.job,
                         WEXITSTATUS(status), w.leases.size());
        }
        for (const auto& [id, l] : w.leases) lease_over(ep, id);
      }
      if (w.conn) ep.close(w.conn, "worker process exited");
      workers_.erase(it);
    }
  }

  void kill_all_workers() {
    for (auto& [pid, w] : workers_) ::kill(pid, SIGKILL);
    for (auto& [pid, w] : workers_) ::waitpid(pid, nullptr, 0);
    workers_.clear();
    waiting_code_.clear();
  }

  NodeDaemonOptions opts_;
  std::uint16_t local_port_ = 0;
  ConnId head_ = 0;
  bool joined_ = false, warned_ = false, refused_ = false;
  std::uint32_t index_ = 0;
  std::string name_;
  std::chrono::milliseconds heartbeat_{500};
  Clock::time_point last_heartbeat_{}, next_connect_{}, connect_started_{}, last_tick_{};
  static constexpr auto kJoinTimeout = std::chrono::seconds(10);
  static constexpr auto kStallWarning = std::chrono::milliseconds(1000);
  std::uint64_t hb_seq_ = 0;
  std::map<pid_t, WorkerProc> workers_;
  std::deque<Lease> waiting_code_;
  std::map<std::string, std::unique_ptr<CodeDownload>> downloads_;  // job code coming from the head, by hash
  std::set<std::string> ended_jobs_;
  std::string observed_host_;
  caf::actor self_;
  // GPU verification: the challenge runs on a thread of its own (the endpoint keeps serving); its prover waits
  // here for the head to ask for rows.
  std::map<std::uint64_t, std::shared_ptr<gpu::verify::Prover>> provers_;

  void verify_challenge(proto::VerifyChallenge::Reader r) {
    gpu::verify::Challenge c{r.getSeed(), static_cast<int>(r.getN())};
    const auto id = r.getId();
    const int device = static_cast<int>(r.getDevice());
    // Detached: it touches this service only through post(), which drops the call once the endpoint is gone.
    std::thread([this, c, id, device, self = self_] {
      std::shared_ptr<gpu::verify::Prover> prover;
      std::string error;
      try {
        // The device under test: its CUDA device through the plugin, or the CPU where there is none (a node
        // declaring GPUs it does not have is then measured as what it is).
        std::string where;
        prover = gpu::verify::run_challenge(c, device, &where);
        spdlog::info("verification challenge {}: n={} on {}", id, c.n, where);
      } catch (const std::exception& e) {
        error = e.what();
      }
      transport::post(self, [this, id, prover, error](Endpoint& ep) {
        capnp::MallocMessageBuilder out;
        auto m = out.initRoot<proto::Envelope>().initVerifyCommit();
        m.setId(id);
        if (prover) {
          provers_[id] = prover;
          const auto& root = prover->commitment().root;
          m.setRoot(capnp::Data::Reader(root.data(), root.size()));
          m.setSeconds(prover->commitment().seconds);
          spdlog::info("verification challenge {}: GEMM took {:.3f} s", id, prover->commitment().seconds);
        } else {
          m.setError(error);
        }
        if (head_) ep.send(head_, out);
      });
    }).detach();
  }

  void verify_open(Endpoint& ep, proto::VerifyOpen::Reader r) {
    auto it = provers_.find(r.getId());
    if (it == provers_.end() || !head_) return;
    std::vector<int> rows;
    for (auto x : r.getRows()) rows.push_back(static_cast<int>(x));
    auto openings = it->second->open(rows);
    provers_.erase(it);
    capnp::MallocMessageBuilder out;
    auto m = out.initRoot<proto::Envelope>().initVerifyRows();
    m.setId(r.getId());
    auto list = m.initRows(static_cast<unsigned>(openings.size()));
    for (unsigned i = 0; i < openings.size(); ++i) {
      list[i].setRow(static_cast<std::uint32_t>(openings[i].row));
      auto values = list[i].initValues(static_cast<unsigned>(openings[i].values.size()));
      for (unsigned j = 0; j < openings[i].values.size(); ++j) values.set(j, openings[i].values[j]);
      auto path = list[i].initPath(static_cast<unsigned>(openings[i].path.size()));
      for (unsigned j = 0; j < openings[i].path.size(); ++j)
        path.set(j, capnp::Data::Reader(openings[i].path[j].data(), openings[i].path[j].size()));
    }
    ep.send(head_, out);
  }
  std::shared_ptr<ObjectStore> store_;
  std::unique_ptr<transport::DataServer> data_;
  // The relay this node and its workers use (the head's, at opts_.head_host, or an operator's); port 0: none.
  void use_relay(const std::string& host, std::uint16_t port) {
    relay_host_ = host.empty() ? opts_.head_host : host;
    relay_port_ = port;
  }
  std::string relay_host_;
  std::uint16_t relay_port_ = 0;
  std::unique_ptr<RelayServer> relay_;  // an operator's relay on this node (--relay); null: none
  std::unique_ptr<TunnelEnds> tunnels_;
  std::atomic<std::uint64_t> object_counter_{0};
  std::unique_ptr<transport::LivenessSender> liveness_;  // "still running" to the head on UDP (liveness.hpp)
  IoThread io_;  // last: stopped (and joined) before the members its work touches go away
  std::map<std::string, std::vector<std::uint64_t>> objects_by_job_;
  std::map<std::string, std::uintmax_t> log_offsets_;
  Clock::time_point last_log_scan_{};
};

}  // namespace

std::shared_ptr<transport::Service> make_node_service(NodeDaemonOptions opts) {
  return std::make_shared<NodeService>(std::move(opts));
}

}  // namespace iogrid::runtime::cluster
