#include "runtime/cluster/head_service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "iogrid/core/errors.hpp"
#include "runtime/cluster/code_transfer.hpp"
#include "runtime/cluster/relay_server.hpp"
#include "runtime/cluster/status_json.hpp"
#include "runtime/head/head_core.hpp"
#include "runtime/proto/convert.hpp"
#include "runtime/transport/reachability.hpp"
#include "runtime/transport/relay_hello.hpp"

namespace iogrid::runtime::cluster {

namespace {

using transport::ConnId;
using transport::Endpoint;
using transport::Peer;

kj::ArrayPtr<const kj::byte> bytes_of(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

template <class T>
std::string text_of(T data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}

template <class List>
std::vector<std::uint64_t> list_of(List l) {
  std::vector<std::uint64_t> out;
  out.reserve(l.size());
  for (auto v : l) out.push_back(v);
  return out;
}

head::HeadConfig core_config(const HeadOptions& o) {
  head::HeadConfig c;
  c.state_dir = o.state_dir;
  c.policy = o.policy;
  c.node_timeout = o.node_timeout;
  c.driver_reconnect = o.driver_reconnect;
  c.user_weights = o.user_weights;
  c.yield_after = o.fair_quantum;
  c.verify_size = o.verify_size;
  c.history = o.history;
  c.network_fee = o.network_fee;
  c.pricing_round = o.pricing_round;
  return c;
}

// The cluster head: decodes what arrives, calls the head core, and encodes what the core asks for (HeadEvents).
// Owners (drivers, workers with nested tasks) are known to the core by their connection id.
class HeadService final : public transport::Service, public head::HeadEvents {
 public:
  explicit HeadService(HeadOptions o) : opts_(std::move(o)), core_(core_config(opts_), *this) {}
  head::HeadCore& core() { return core_; }

  // ---- the relay (cluster/relay_server.hpp) ----
  void set_relay(std::uint16_t port, std::function<RelayStats()> stats) {
    relay_port_ = port;
    relay_stats_ = std::move(stats);
  }
  // Relay names: "job-N" (a driver's control connection), "data-job:job-N" (its data plane), "data-node:N",
  // "tunnel:NODE:PORT" (a port its owner allows, cluster/tunnel_ends.hpp).
  bool relay_target_known(const std::string& target) const {
    std::lock_guard<std::mutex> g(relay_m_);
    return tunnel_of(target) || relay_targets_.count(target) > 0;
  }
  struct TunnelTarget {
    ConnId conn = 0;
    std::uint16_t port = 0;
  };
  // Under relay_m_: the node connection and port of a tunnel name its node allows; nullopt otherwise.
  std::optional<TunnelTarget> tunnel_of(const std::string& target) const {
    if (target.rfind("tunnel:", 0) != 0) return std::nullopt;
    const auto colon = target.rfind(':');
    if (colon <= 7) return std::nullopt;
    const auto node = target.substr(7, colon - 7);
    const auto it = tunnel_ports_.find(node);
    if (it == tunnel_ports_.end()) return std::nullopt;
    const auto port = std::atoi(target.c_str() + colon + 1);
    if (port <= 0 || !it->second.second.count(static_cast<std::uint16_t>(port))) return std::nullopt;
    return TunnelTarget{it->second.first, static_cast<std::uint16_t>(port)};
  }
  // Asks the process named `target` to dial the relay for `session`: the head's own (`host` empty) or the
  // operator's relay at host:port.
  void relay_dial(Endpoint& ep, const std::string& target, const std::string& session, bool punch,
                  const std::string& host = "", std::uint16_t port = 0) {
    ConnId to = 0;
    std::uint16_t tunnel_port = 0;
    {
      std::lock_guard<std::mutex> g(relay_m_);
      if (auto t = tunnel_of(target)) {
        to = t->conn;
        tunnel_port = t->port;
      } else {
        auto it = relay_targets_.find(target);
        if (it == relay_targets_.end()) return;
        to = it->second;
      }
    }
    capnp::MallocMessageBuilder out;
    auto d = out.initRoot<proto::Envelope>().initRelayDial();
    d.setSession(session);
    d.setPort(host.empty() ? relay_port_ : port);
    d.setHost(host);
    d.setData(target.rfind("data-", 0) == 0);
    d.setTunnelPort(tunnel_port);
    d.setPunch(punch && tunnel_port == 0);
    ep.send(to, out);
  }
  void name_for_relay(const std::string& target, ConnId conn) {
    std::lock_guard<std::mutex> g(relay_m_);
    relay_targets_[target] = conn;
  }

  void on_start(Endpoint& ep) override {
    ep_ = &ep;
    self_ = ep.handle();
  }
  void on_stop(Endpoint&) override { self_ = nullptr; }  // the endpoint holds this service: no reference back

  // The status as JSON (the dashboard asks through the endpoint, so this runs on its thread).

  void on_peer(Endpoint& ep, Peer& p) override {
    ep_ = &ep;
    spdlog::debug("{} '{}' connected from {}", static_cast<int>(p.role), p.name, p.address);
  }

  void on_message(Endpoint& ep, Peer& p, proto::Envelope::Reader msg) override {
    ep_ = &ep;
    using W = proto::Envelope::Which;
    switch (msg.which()) {
      case W::REGISTER_NODE: return register_node(ep, p, msg.getRegisterNode());
      case W::HEARTBEAT: {
        auto node = node_of(p.id);
        if (!node) return;
        auto h = msg.getHeartbeat();
        std::vector<gpu::Telemetry> tel;
        for (auto t : h.getTelemetry()) tel.push_back(proto::read(t));
        if (auto r = op_relays_.find(*node); r != op_relays_.end())
          r->second.figures = {h.getRelaySessions(), h.getRelayActive(), h.getRelayRefused(), h.getRelayBytes(), h.getRelayPunches(), {}};
        return core_.heartbeat(*node, {h.getStoreUsedBytes(), h.getStoreCapacityBytes(), h.getStoreObjects(), h.getSpilledBytes()},
                               std::move(tel));
      }
      case W::REGISTER_JOB: return register_job(ep, p, msg.getRegisterJob());
      case W::CODE: return code_chunk(ep, p, msg.getCode());
      case W::CODE_REQUEST: return send_code(ep, p.id, msg.getCodeRequest().getHash(), msg.getCodeRequest().getOffset());
      case W::LEASE_REQUEST: {
        auto r = msg.getLeaseRequest();
        if (!core_.request_lease(p.id, r.getLeaseId(), proto::read(r.getRequest())))
          ep.close(p.id, "lease request before registering a job");
        return;
      }
      case W::LEASE_DONE: return core_.lease_ended(msg.getLeaseDone().getLeaseId());
      case W::JOB_ENDED: return core_.driver_finished(p.id, msg.getJobEnded().getReason());
      case W::STATUS_REQUEST: return status(ep, p.id);
      case W::KV_PUT: return core_.kv_put(msg.getKvPut().getKey(), text_of(msg.getKvPut().getValue()));
      case W::KV_GET: {
        capnp::MallocMessageBuilder out;
        auto r = out.initRoot<proto::Envelope>().initKvValue();
        r.setRequestId(msg.getKvGet().getRequestId());
        auto v = core_.kv_get(msg.getKvGet().getKey());
        r.setFound(v.has_value());
        if (v) r.setValue(bytes_of(*v));
        return ep.send(p.id, out);
      }
      case W::STOP_JOB: {
        const std::string id = msg.getStopJob().getJobId();
        if (!core_.stop_job(id, p.name + " from " + p.address)) {
          capnp::MallocMessageBuilder out;
          out.initRoot<proto::Envelope>().initReject().setReason("no job " + id);
          return ep.send(p.id, out);
        }
        return status(ep, p.id);
      }
      case W::ADMIN_REQUEST: return admin(ep, p, msg.getAdminRequest());
      case W::TASK_REPORT: return core_.task_report(p.id, msg.getTaskReport().getJson());
      case W::RELAY_ASK: return relay_ask(ep, p, msg.getRelayAsk());
      case W::VERIFY_COMMIT: {
        auto node = node_of(p.id);
        if (!node) return;
        auto m = msg.getVerifyCommit();
        auto root = m.getRoot();
        return core_.verify_committed(*node, m.getId(), std::vector<std::uint8_t>(root.begin(), root.end()), m.getSeconds(),
                                      m.getError());
      }
      case W::VERIFY_ROWS: {
        auto node = node_of(p.id);
        if (!node) return;
        auto m = msg.getVerifyRows();
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
        return core_.verify_opened(*node, m.getId(), openings);
      }
      case W::OBJECTS_ADDED: {
        auto node = node_of(p.id);
        if (!node) return;
        auto a = msg.getObjectsAdded();
        return core_.objects_added(*node, list_of(a.getKeys()), list_of(a.getSizes()));
      }
      case W::OBJECTS_REMOVED: {
        auto node = node_of(p.id);
        if (!node) return;
        return core_.objects_removed(*node, list_of(msg.getObjectsRemoved().getKeys()));
      }
      case W::JOB_LOG: {
        auto l = msg.getJobLog();
        return core_.append_log(l.getJobId(), l.getSubmissionId(), text_of(l.getText()));
      }
      case W::JOB_LOGS_REQUEST: {
        std::string job = msg.getJobLogsRequest().getJobId();
        capnp::MallocMessageBuilder out;
        auto r = out.initRoot<proto::Envelope>().initJobLogsReply();
        r.setJobId(job);
        r.setFound(core_.has_job(job));
        if (auto text = core_.logs(job)) r.setText(bytes_of(*text));
        return ep.send(p.id, out);
      }
      case W::LEASE_BLOCKED: {
        auto lb = msg.getLeaseBlocked();
        if (lb.getBlocked()) core_.worker_blocked(lb.getLeaseId());
        else core_.worker_resumed(lb.getLeaseId());
        return;
      }
      default:
        spdlog::warn("closing connection from {} ('{}'): unexpected message {}", p.address, p.name,
                     static_cast<int>(msg.which()));
        return ep.close(p.id, "unexpected message");
    }
  }

  void on_closed(Endpoint& ep, Peer& p, const std::string& why) override {
    ep_ = &ep;
    if (auto it = node_by_conn_.find(p.id); it != node_by_conn_.end()) {
      const auto index = it->second;
      node_by_conn_.erase(it);
      conn_of_node_.erase(index);
      core_.node_lost(index, why);
    }
    core_.owner_gone(p.id, why);
    code_source_gone(ep, p.id);
    nested_owners_.erase(p.id);
    relay_user_gone(ep, p.id);
    std::lock_guard<std::mutex> g(relay_m_);
    for (auto it = relay_targets_.begin(); it != relay_targets_.end();)
      it = it->second == p.id ? relay_targets_.erase(it) : std::next(it);
    for (auto it = tunnel_ports_.begin(); it != tunnel_ports_.end();)
      it = it->second.first == p.id ? tunnel_ports_.erase(it) : std::next(it);
  }

  void on_tick(Endpoint& ep) override {
    ep_ = &ep;
    core_.tick();
    close_dropped(ep);
  }

  // ---- HeadEvents: what the core asks for, as envelopes ----
  void start_lease(std::uint32_t node, const head::LeaseGrant& g) override {
    capnp::MallocMessageBuilder out;
    auto s = out.initRoot<proto::Envelope>().initStartLease();
    s.setLeaseId(g.lease);
    s.setOwnerLeaseId(g.owner_lease);
    s.setJobId(std::string(g.job));
    s.setCodeHash(std::string(g.code_hash));
    s.setOwnerHost(std::string(g.owner_host));
    s.setOwnerPort(g.owner_port);
    // A driver the head could not dial back (or not yet): its workers come through the relay (the node's: the
    // head's or an operator's).
    const auto node_conn = conn_of_node_.find(node);
    if (relay_port_ || (node_conn != conn_of_node_.end() && relay_of_conn_.count(node_conn->second))) {
      const auto* j = core_.jobs().find(std::string(g.job));
      if (j && j->driver_owner == g.owner && j->driver_reach.inbound != transport::Inbound::open) {
        s.setRelayTarget(std::string(g.job));
        s.setRelayPort(relay_port_);
        s.setOwnerChecking(j->driver_reach.inbound == transport::Inbound::unknown);
      } else if (auto n = nested_owners_.find(g.owner); n != nested_owners_.end() && n->second.inbound != transport::Inbound::open) {
        s.setRelayTarget(n->second.relay_name);
        s.setRelayPort(relay_port_);
        s.setOwnerChecking(n->second.inbound == transport::Inbound::unknown);
      }
    }
    proto::write(s.initAllocation(), g.alloc);
    send_to_node(node, out);
  }

  void refuse_lease(head::OwnerId owner, std::uint64_t owner_lease, const std::string& reason, head::LeaseRefusal why) override {
    if (!ep_->peer(owner)) return;
    capnp::MallocMessageBuilder out;
    auto f = out.initRoot<proto::Envelope>().initLeaseFailed();
    f.setLeaseId(owner_lease);
    f.setReason(reason);
    f.setInfeasible(why == head::LeaseRefusal::never_fits);
    f.setRetry(why == head::LeaseRefusal::ask_again);
    ep_->send(owner, out);
  }

  void yield_lease(head::OwnerId owner, std::uint64_t owner_lease) override {
    if (!ep_->peer(owner)) return;
    capnp::MallocMessageBuilder out;
    out.initRoot<proto::Envelope>().initYieldLease().setLeaseId(owner_lease);
    ep_->send(owner, out);
  }

  void node_died(std::uint32_t node, const std::string& name, const std::string& why,
                 const std::vector<head::OwnerId>& owners) override {
    capnp::MallocMessageBuilder out;
    auto d = out.initRoot<proto::Envelope>().initNodeDead();
    d.setNodeIndex(node);
    d.setName(name);
    d.setReason(why);
    auto frame = transport::encode_frame(out);
    for (auto o : owners) ep_->send_frame(o, frame);
  }

  void job_ended(const std::string& job, const std::string& why, const std::vector<head::OwnerId>& owners) override {
    capnp::MallocMessageBuilder out;
    auto e = out.initRoot<proto::Envelope>().initJobEnded();
    e.setJobId(job);
    e.setReason(why);
    auto frame = transport::encode_frame(out);
    for (const auto& [conn, index] : node_by_conn_) ep_->send_frame(conn, frame);
    for (auto o : owners) ep_->send_frame(o, frame);
  }

  void drop_node(std::uint32_t node, const std::string& why) override {
    // Closing the connection ends the node (on_closed then tells the core). Deferred past the core's loop.
    if (auto it = conn_of_node_.find(node); it != conn_of_node_.end()) to_close_.emplace_back(it->second, why);
  }

  void send_challenge(std::uint32_t node, const head::Challenge& c) override {
    capnp::MallocMessageBuilder out;
    auto m = out.initRoot<proto::Envelope>().initVerifyChallenge();
    m.setId(c.id);
    m.setSeed(c.challenge.seed);
    m.setN(static_cast<std::uint32_t>(c.challenge.n));
    m.setDevice(c.device);
    send_to_node(node, out);
  }

  void send_rows_to_open(std::uint32_t node, std::uint64_t id, const std::vector<int>& rows) override {
    capnp::MallocMessageBuilder out;
    auto o = out.initRoot<proto::Envelope>().initVerifyOpen();
    o.setId(id);
    auto list = o.initRows(static_cast<unsigned>(rows.size()));
    for (unsigned i = 0; i < rows.size(); ++i) list.set(i, static_cast<std::uint32_t>(rows[i]));
    send_to_node(node, out);
  }

  void admin_answer(head::OwnerId requester, std::uint64_t request_id, bool ok, const std::string& body) override {
    if (!ep_->peer(requester)) return;
    capnp::MallocMessageBuilder out;
    auto reply = out.initRoot<proto::Envelope>().initAdminReply();
    reply.setRequestId(request_id);
    reply.setOk(ok);
    if (ok) reply.setBody(body);
    else reply.setError(body);
    ep_->send(requester, out);
  }

  // Connections health checking asked to end (closed after the core's tick returned).
  void close_dropped(Endpoint& ep) {
    auto list = std::move(to_close_);
    to_close_.clear();
    for (auto& [conn, why] : list) ep.close(conn, why);
  }

 private:
  std::optional<std::uint32_t> node_of(ConnId conn) const {
    auto it = node_by_conn_.find(conn);
    if (it == node_by_conn_.end()) return std::nullopt;
    return it->second;
  }

  void send_to_node(std::uint32_t node, capnp::MessageBuilder& out) {
    if (auto it = conn_of_node_.find(node); it != conn_of_node_.end()) ep_->send(it->second, out);
  }

  void register_node(Endpoint& ep, Peer& p, proto::RegisterNode::Reader r) {
    if (p.role != proto::Role::NODE) return ep.close(p.id, "only nodes register as nodes");
    head::Join j;
    j.node = proto::read(r.getInfo());
    j.host = r.getHost().size() ? std::string(r.getHost()) : p.address;
    j.reach.observed_host = p.address;
    j.reach.observed_port = p.port;
    j.reach.local_host = r.getLocalHost();
    j.reach.data_port = r.getDataPort();
    j.rejoin = r.getRejoin();
    j.previous_index = r.getPreviousIndex();
    j.previous_name = r.getPreviousName();
    for (auto l : r.getActiveLeases())
      j.leases.push_back({l.getLeaseId(), l.getOwnerLeaseId(), l.getJobId(), proto::read(l.getAllocation())});
    auto joined = core_.join(std::move(j));
    node_by_conn_[p.id] = joined.index;
    conn_of_node_[joined.index] = p.id;
    capnp::MallocMessageBuilder out;
    auto a = out.initRoot<proto::Envelope>().initNodeAccepted();
    a.setNodeIndex(joined.index);
    a.setName(joined.name);
    a.setHeartbeatMs(static_cast<std::uint32_t>(opts_.heartbeat.count()));
    a.setObservedHost(p.address);
    {
      const auto [host, port] = assign_relay(p.id, joined.index);
      a.setRelayHost(host);
      a.setRelayPort(port);
    }
    ep.send(p.id, out);
    name_for_relay(transport::data_node_relay_name(joined.index), p.id);
    if (r.getRelayPort()) {
      if (opts_.relay_nodes.count("*") || opts_.relay_nodes.count(joined.name))
        offer_relay(joined.index, joined.name, p.id, p.address, r.getRelayPort());
      else
        spdlog::warn("node {} offers a relay at {}:{}: not used (only nodes named in iogrid head --relay-nodes relay)",
                     joined.name, p.address, r.getRelayPort());
    }
    {
      std::set<std::uint16_t> ports;
      for (auto port : r.getAllowTunnel()) ports.insert(port);
      std::lock_guard<std::mutex> g(relay_m_);
      if (ports.empty()) {
        tunnel_ports_.erase(joined.name);
      } else {
        std::string list;
        for (auto port : ports) list += (list.empty() ? "" : ",") + std::to_string(port);
        spdlog::info("node {} allows tunnels to its ports {}", joined.name, list);
        tunnel_ports_[joined.name] = {p.id, std::move(ports)};
      }
    }
    core_.admit(joined.index);
    // Can it be dialled? (Its data port, at the address its connection came from.)
    if (r.getDataPort())
      dial_backs_.dial(p.address, r.getDataPort(), [self = self_, node = joined.index, host = p.address, port = r.getDataPort(), this](bool open) {
        transport::post(self, [this, node, host, port, open](Endpoint&) { core_.dialled_back(node, host, port, open); });
      });
  }

  void register_job(Endpoint& ep, Peer& p, proto::RegisterJob::Reader r) {
    if (p.role != proto::Role::DRIVER && p.role != proto::Role::WORKER) return ep.close(p.id, "only drivers register jobs");
    head::Registration reg;
    reg.owner_host = r.getOwnerHost().size() ? std::string(r.getOwnerHost()) : p.address;
    if (reg.owner_host == "0.0.0.0" || reg.owner_host.empty()) reg.owner_host = p.address;
    reg.owner_port = r.getOwnerPort();
    reg.reach.observed_host = p.address;
    reg.reach.observed_port = p.port;
    reg.reach.local_host = r.getLocalHost();
    reg.reach.data_port = reg.owner_port;
    reg.driver = p.name + "@" + p.address;
    reg.code_hash = r.getSpec().getCodeHash();
    reg.user = r.getSpec().getUser();
    reg.weight = r.getSpec().getWeight();
    reg.submission = r.getSubmissionId();
    reg.parent_job = r.getParentJob();
    reg.resume_job = r.getResumeJob();
    auto res = core_.register_owner(p.id, reg);
    if (!res.ok) {
      if (reg.resume_job.empty()) return ep.close(p.id, res.error);
      capnp::MallocMessageBuilder out;
      auto e = out.initRoot<proto::Envelope>().initJobEnded();
      e.setJobId(reg.resume_job);
      e.setReason(res.error);
      return ep.send(p.id, out);
    }
    capnp::MallocMessageBuilder out;
    auto a = out.initRoot<proto::Envelope>().initJobAccepted();
    a.setJobId(res.job);
    a.setNeedCode(res.need_code);
    a.setVerifyFraction(opts_.verify_fraction);
    a.setObservedHost(p.address);
    {
      const auto [host, port] = assign_relay(p.id, std::nullopt);
      a.setRelayHost(host);
      a.setRelayPort(port);
    }
    ep.send(p.id, out);
    if (res.need_code) want_code(ep, reg.code_hash, p.id, r.getCodeSize());
    if (reg.parent_job.empty()) {
      name_for_relay(res.job, p.id);
      name_for_relay(transport::data_job_relay_name(res.job), p.id);
    }
    // Can its workers dial it? A driver's answer goes to its job record; a nested owner's (a worker process
    // submitting tasks of its own, on a node that may sit behind a NAT) is kept here, and until it is known
    // to be open its workers come through the relay as well.
    if (reg.parent_job.empty() && reg.owner_port)
      dial_backs_.dial(reg.owner_host, reg.owner_port, [self = self_, job = res.job, host = reg.owner_host, port = reg.owner_port, this](bool open) {
        transport::post(self, [this, job, host, port, open](Endpoint&) { core_.driver_dialled_back(job, host, port, open); });
      });
    if (!reg.parent_job.empty() && reg.owner_port) {
      const auto name = transport::nested_owner_relay_name(res.job, p.id);
      // Until its own port is dialled: as open as a live node seen from the same address (its machine).
      auto inbound = transport::Inbound::unknown;
      const auto& nodes = core_.nodes();
      for (std::uint32_t i = 0; i < nodes.size(); ++i)
        if (nodes.alive(i) && nodes[i].reach.observed_host == p.address && nodes[i].reach.inbound == transport::Inbound::open)
          inbound = transport::Inbound::open;
      nested_owners_[p.id] = {name, inbound};
      name_for_relay(name, p.id);
      dial_backs_.dial(reg.owner_host, reg.owner_port, [self = self_, conn = p.id, this](bool open) {
        transport::post(self, [this, conn, open](Endpoint&) {
          if (auto it = nested_owners_.find(conn); it != nested_owners_.end())
            it->second.inbound = open ? transport::Inbound::open : transport::Inbound::closed;
        });
      });
    }
  }

  // ---- job code: pulled from a driver in chunks, served to nodes in chunks (cluster/code_transfer.hpp) ----

  // Code being pulled from a driver (one upload per executable).
  struct Upload {
    ConnId from = 0;
    std::unique_ptr<CodeDownload> download;
  };

  // A job needs code the head lacks: `from` (its driver) holds it. One upload per executable at a time; the
  // other drivers holding the same one are kept in case the uploading one goes away.
  void want_code(Endpoint& ep, const std::string& hash, ConnId from, std::uint64_t size) {
    auto& sources = code_sources_[hash];
    sources.push_back({from, size});
    if (!uploads_.count(hash)) start_upload(ep, hash);
  }

  void start_upload(Endpoint& ep, const std::string& hash) {
    auto& sources = code_sources_[hash];
    while (!sources.empty() && !ep.peer(sources.front().first)) sources.erase(sources.begin());
    if (sources.empty()) {
      code_sources_.erase(hash);
      return;  // nodes asking for it keep waiting: a driver resuming the job uploads it again
    }
    auto [from, size] = sources.front();
    auto& up = uploads_[hash];
    up.from = from;
    up.download = std::make_unique<CodeDownload>(core_.code().dir(), hash, size);
    ask_code_chunks(ep, from, *up.download);
  }

  void code_chunk(Endpoint& ep, Peer& p, proto::Code::Reader c) {
    const std::string hash = c.getHash();
    auto it = uploads_.find(hash);
    if (it == uploads_.end() || it->second.from != p.id) return;  // not asked for (or from a driver since replaced)
    auto& up = it->second;
    auto b = c.getBytes();
    switch (up.download->add(c.getOffset(), c.getTotal(), {reinterpret_cast<const char*>(b.begin()), b.size()})) {
      case CodeDownload::Step::more:
        return ask_code_chunks(ep, up.from, *up.download);
      case CodeDownload::Step::done: {
        spdlog::info("stored job code {} ({} bytes)", hash.substr(0, 12), up.download->total());
        uploads_.erase(it);
        code_sources_.erase(hash);
        for (auto [conn, offset] : core_.code().take_waiting(hash))  // nodes that asked before it arrived
          if (ep.peer(conn)) send_code(ep, conn, hash, offset);
        return;
      }
      case CodeDownload::Step::failed: {
        const std::string why = up.download->error();
        spdlog::warn("closing connection from {}: its upload of code {} failed: {}", p.address, hash.substr(0, 12), why);
        uploads_.erase(it);
        auto& sources = code_sources_[hash];
        sources.erase(std::remove_if(sources.begin(), sources.end(), [&](const auto& s) { return s.first == p.id; }),
                      sources.end());
        ep.close(p.id, "the upload of this program failed: " + why);
        return start_upload(ep, hash);
      }
    }
  }

  // A driver that went away mid-upload: the next driver holding the same code takes over.
  void code_source_gone(Endpoint& ep, ConnId conn) {
    std::vector<std::string> restart;
    for (auto& [hash, sources] : code_sources_)
      sources.erase(std::remove_if(sources.begin(), sources.end(), [&](const auto& s) { return s.first == conn; }),
                    sources.end());
    for (auto it = uploads_.begin(); it != uploads_.end();) {
      if (it->second.from != conn) {
        ++it;
        continue;
      }
      restart.push_back(it->first);
      it = uploads_.erase(it);
    }
    for (const auto& hash : restart) start_upload(ep, hash);
  }

  // One chunk of stored code, read here (a megabyte from the page cache), or the ask kept until it is stored.
  void send_code(Endpoint& ep, ConnId to, const std::string& hash, std::uint64_t offset) {
    const bool sha256_hex = hash.size() == 64 && hash.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!sha256_hex) return send_code_chunk(ep, to, hash, offset, {});  // never kept waiting: "no such code"
    if (!core_.code().has(hash)) return core_.code().wait_for(hash, to, offset);
    send_code_chunk(ep, to, hash, offset, core_.code().path(hash));
  }

  void admin(Endpoint& ep, Peer& p, proto::AdminRequest::Reader r) {
    std::optional<std::string> body;
    try {
      body = core_.admin(p.id, r.getRequestId(), p.name, r.getCommand(), r.getArgs());
    } catch (const std::exception& e) {
      return admin_answer(p.id, r.getRequestId(), false, e.what());
    }
    if (body) admin_answer(p.id, r.getRequestId(), true, *body);
  }

  void status(Endpoint& ep, ConnId to) {
    capnp::MallocMessageBuilder out;
    fill_status(ep, out.initRoot<proto::Envelope>().initStatusReply());
    ep.send(to, out);
  }

  void fill_status(Endpoint& ep, proto::StatusReply::Builder s) {
    cluster::fill_status(core_, ep.name(), s);
    auto operators = nlohmann::json::array();
    for (const auto& [index, o] : op_relays_)
      operators.push_back({{"node", o.name}, {"host", o.host}, {"port", o.port}, {"usable", o.usable}, {"users", o.users},
                           {"sessions", o.figures.sessions}, {"active", o.figures.active}, {"refused", o.figures.refused},
                           {"bytes", o.figures.bytes}, {"punches", o.figures.punches}});
    if (!relay_stats_ && !operators.empty()) s.setRelayJson(nlohmann::json{{"operators", operators}}.dump());
    if (relay_stats_) {
      const auto r = relay_stats_();
      auto tunnels = nlohmann::json::array();
      for (const auto& t : r.tunnels)
        tunnels.push_back({{"target", t.target}, {"from", t.from}, {"seconds", t.seconds}, {"bytes", t.bytes}});
      auto allowed = nlohmann::json::object();
      {
        std::lock_guard<std::mutex> g(relay_m_);
        for (const auto& [node, entry] : tunnel_ports_) allowed[node] = entry.second;
      }
      s.setRelayJson(nlohmann::json{{"port", relay_port_}, {"sessions", r.sessions}, {"active", r.active},
                                    {"refused", r.refused}, {"bytes", r.bytes}, {"punches", r.punches}, {"tunnels", tunnels},
                                    {"tunnel_ports", allowed}, {"users", head_relay_conns_.size()}, {"operators", operators}}.dump());
    }
  }

  // ---- operators' relays (`iogrid node --relay`) ----
  // Rules: a node that offers a relay is used only when the head's operator named it (--relay-nodes: a relay
  // sees who talks to whom, and the bytes without TLS), and once the head has dialled its relay port (it must
  // accept connections from anywhere). Every process that joins afterwards (a node, a driver) is given the operator's
  // relay with the fewest users, never its own; the head's relay when there is none (marking nodes as relays
  // takes the relayed traffic off the head's link). A relay a dialer uses asks the head, which knows every
  // target, to send the target there. When a relay's node goes, its users are moved to another (UseRelay).
  struct OperatorRelay {
    std::string name, host;
    ConnId conn = 0;
    std::uint16_t port = 0;
    bool usable = false;  // dialled from the head
    std::size_t users = 0;
    RelayStats figures;   // as its node's latest heartbeat said
  };

  // The relay for a process joining now (host "" is the head's; port 0: none), remembered for UseRelay.
  std::pair<std::string, std::uint16_t> assign_relay(ConnId who, std::optional<std::uint32_t> own_node) {
    OperatorRelay* best = nullptr;
    std::uint32_t best_index = 0;
    for (auto& [index, o] : op_relays_)
      if (o.usable && (!own_node || *own_node != index) && (!best || o.users < best->users)) {
        best = &o;
        best_index = index;
      }
    if (!best) {
      relay_of_conn_.erase(who);
      head_relay_conns_.insert(who);
      return {"", relay_port_};
    }
    ++best->users;
    relay_of_conn_[who] = best_index;
    return {best->host, best->port};
  }

  void offer_relay(std::uint32_t index, const std::string& name, ConnId conn, const std::string& host, std::uint16_t port) {
    op_relays_[index] = OperatorRelay{name, host, conn, port, false, 0, {}};
    dial_backs_.dial(host, port, [self = self_, index, conn, name, host, port, this](bool open) {
      transport::post(self, [this, index, conn, name, host, port, open](Endpoint&) {
        auto it = op_relays_.find(index);
        if (it == op_relays_.end() || it->second.conn != conn) return;
        it->second.usable = open;
        if (open) spdlog::info("node {} relays for processes that join from now on, at {}:{}", name, host, port);
        else spdlog::warn("node {} was marked a relay but its relay at {}:{} cannot be dialled: not used", name, host, port);
      });
    });
  }

  // A relay at this node asks for a target (RelayAsk): send the target there, or refuse the session.
  void relay_ask(Endpoint& ep, Peer& p, proto::RelayAsk::Reader a) {
    const auto node = node_of(p.id);
    const auto it = node ? op_relays_.find(*node) : op_relays_.end();
    const std::string target = a.getTarget(), session = a.getSession();
    std::string refusal;
    if (it == op_relays_.end()) refusal = "this node is not a relay";
    else if (!relay_target_known(target)) refusal = "no process '" + target + "' to relay to";
    if (refusal.empty()) return relay_dial(ep, target, session, a.getPunch(), it->second.host, it->second.port);
    capnp::MallocMessageBuilder out;
    auto r = out.initRoot<proto::Envelope>().initRelayRefused();
    r.setSession(session);
    r.setReason(refusal);
    ep.send(p.id, out);
  }

  // A connection ended: it no longer uses its relay; a relay's node ended: its users move to another relay.
  void relay_user_gone(Endpoint& ep, ConnId conn) {
    head_relay_conns_.erase(conn);
    if (auto u = relay_of_conn_.find(conn); u != relay_of_conn_.end()) {
      if (auto r = op_relays_.find(u->second); r != op_relays_.end() && r->second.users) --r->second.users;
      relay_of_conn_.erase(u);
    }
    std::uint32_t gone = 0;
    auto r = std::find_if(op_relays_.begin(), op_relays_.end(), [&](const auto& e) { return e.second.conn == conn; });
    if (r == op_relays_.end()) return;
    gone = r->first;
    spdlog::warn("the relay on node {} ({}:{}) is gone: its {} users move to another", r->second.name, r->second.host,
                 r->second.port, r->second.users);
    op_relays_.erase(r);
    std::vector<ConnId> moving;
    for (const auto& [user, index] : relay_of_conn_)
      if (index == gone) moving.push_back(user);
    for (auto user : moving) {
      std::optional<std::uint32_t> own;
      if (auto n = node_by_conn_.find(user); n != node_by_conn_.end()) own = n->second;
      const auto [host, port] = assign_relay(user, own);
      capnp::MallocMessageBuilder out;
      auto m = out.initRoot<proto::Envelope>().initUseRelay();
      m.setHost(host);
      m.setPort(port);
      ep.send(user, out);
    }
  }

  HeadOptions opts_;
  head::HeadCore core_;
  Endpoint* ep_ = nullptr;  // the endpoint whose thread runs every call into the core
  std::unordered_map<ConnId, std::uint32_t> node_by_conn_;
  std::unordered_map<std::uint32_t, ConnId> conn_of_node_;
  std::vector<std::pair<ConnId, std::string>> to_close_;
  caf::actor self_;
  std::uint16_t relay_port_ = 0;  // the head's relay (0: none)
  std::function<RelayStats()> relay_stats_;
  std::map<std::uint32_t, OperatorRelay> op_relays_;           // by node index (endpoint thread)
  std::unordered_map<ConnId, std::uint32_t> relay_of_conn_;     // a process using an operator's relay -> its node
  std::set<ConnId> head_relay_conns_;                           // processes using the head's relay
  mutable std::mutex relay_m_;
  std::unordered_map<std::string, ConnId> relay_targets_;  // relay name -> its process's connection (any thread reads)
  std::map<std::string, std::pair<ConnId, std::set<std::uint16_t>>> tunnel_ports_;  // node -> its conn, allowed ports
  std::map<std::string, Upload> uploads_;  // code being pulled, by hash
  // Nested owners (worker processes submitting tasks): their relay name and whether the head could dial them.
  struct NestedOwner {
    std::string relay_name;
    transport::Inbound inbound = transport::Inbound::unknown;
  };
  std::unordered_map<ConnId, NestedOwner> nested_owners_;
  // The drivers holding code the head lacks, with the size each announced.
  std::map<std::string, std::vector<std::pair<ConnId, std::uint64_t>>> code_sources_;
  transport::DialBacks dial_backs_;  // its answers go through the endpoint (self_), never straight to the core
};

}  // namespace

std::shared_ptr<transport::Service> make_head_service(HeadOptions opts) {
  return std::make_shared<HeadService>(std::move(opts));
}

nlohmann::json head_status_tree(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head) {
  // The head's thread copies its tables into a message (cheap); the JSON is made here, off that thread.
  auto p = std::make_shared<std::promise<kj::Array<capnp::word>>>();
  auto f = p->get_future();
  transport::post(endpoint, [p, head](Endpoint& ep) {
    p->set_value(head_status_message(static_cast<HeadService&>(*head).core(), ep.name()));
  });
  if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw core::Error("iogrid: the head did not answer within 5 s");
  auto message = f.get();
  return status_document_json(message);
}

std::string head_admin(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head,
                       const std::string& command, const std::string& args_json, const std::string& who) {
  if (command == "verify") throw core::Error("iogrid: verify runs from the CLI (iogrid verify), not the dashboard");
  struct Answer {
    std::string body, error;
  };
  auto p = std::make_shared<std::promise<Answer>>();
  auto f = p->get_future();
  transport::post(endpoint, [p, head, command, args_json, who](Endpoint&) {
    try {
      auto body = static_cast<HeadService&>(*head).core().admin(0, 0, who, command, args_json);
      p->set_value({body.value_or("{}"), ""});
    } catch (const std::exception& e) {
      p->set_value({"", e.what()});
    }
  });
  if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw core::Error("iogrid: the head did not answer within 5 s");
  auto a = f.get();
  if (!a.error.empty()) throw core::Error(a.error);
  return a.body;
}

std::shared_ptr<head::History> head_history(const std::shared_ptr<transport::Service>& head) {
  return static_cast<HeadService&>(*head).core().history();  // set when the core was made, never changed
}

void set_head_relay(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head, std::uint16_t port,
                    std::function<RelayStats()> stats) {
  transport::post(endpoint, [head, port, stats = std::move(stats)](Endpoint&) mutable {
    static_cast<HeadService&>(*head).set_relay(port, std::move(stats));
  });
}

std::function<bool(const std::string&, const std::string&, bool)> head_relay_asker(const caf::actor& endpoint,
                                                                                  const std::shared_ptr<transport::Service>& head) {
  return [endpoint, weak = std::weak_ptr<transport::Service>(head)](const std::string& target, const std::string& session, bool punch) {
    auto h = weak.lock();
    if (!h || !static_cast<HeadService&>(*h).relay_target_known(target)) return false;
    transport::post(endpoint, [weak, target, session, punch](Endpoint& ep) {
      if (auto h2 = weak.lock()) static_cast<HeadService&>(*h2).relay_dial(ep, target, session, punch);
    });
    return true;
  };
}

void set_head_heard(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head,
                    std::function<std::optional<head::Clock::time_point>(std::uint32_t)> heard) {
  transport::post(endpoint, [head, heard = std::move(heard)](Endpoint&) mutable {
    static_cast<HeadService&>(*head).core().set_heard(std::move(heard));
  });
}

}  // namespace iogrid::runtime::cluster
