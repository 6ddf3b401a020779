#include "runtime/cluster/status_json.hpp"

#include <initializer_list>
#include <map>
#include <set>
#include <sstream>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <limits>

#include "runtime/proto/convert.hpp"

namespace iogrid::runtime::cluster {

// The scheduler's queue and fair share per user: what each holds (leases, CPUs, GPUs), what waits, its dominant
// share now and the share its weight entitles it to among the users with work (running or waiting).
namespace {
nlohmann::json users_json(const head::HeadCore& core) {
  struct Use {
    std::set<std::string> jobs;
    std::size_t leases = 0, waiting = 0;
    double cpus = 0, gpus = 0;
  };
  std::map<std::string, Use> users;
  auto user_of = [&](const std::string& job) -> std::string {
    const auto* j = core.jobs().find(job);
    return j && !j->user.empty() ? j->user : "default";
  };
  for (const auto& [id, l] : core.leases().running()) {
    auto& u = users[user_of(l.job)];
    u.jobs.insert(l.job);
    u.leases += 1;
    u.cpus += sched::from_milli(l.alloc.cpus);
    u.gpus += sched::gpu_count(l.alloc);
  }
  for (const auto& [ticket, p] : core.leases().waiting()) {
    const auto* o = core.jobs().owner(p.owner);
    if (!o) continue;
    auto& u = users[user_of(o->job)];
    u.jobs.insert(o->job);
    u.waiting += 1;
  }
  double weights = 0;
  auto weight_of = [&](const std::string& user) {
    auto w = core.config().user_weights.find(user);
    return w == core.config().user_weights.end() ? 1.0 : w->second;
  };
  for (const auto& [name, u] : users) weights += weight_of(name);
  auto out = nlohmann::json::array();
  for (const auto& [name, u] : users)
    out.push_back({{"user", name}, {"weight", weight_of(name)}, {"jobs", u.jobs.size()}, {"leases", u.leases},
                   {"cpus", u.cpus}, {"gpus", u.gpus}, {"waiting", u.waiting},
                   {"share", core.scheduler().user_share(name)}, {"fair_share", weights > 0 ? weight_of(name) / weights : 0}});
  return out;
}
}  // namespace

void fill_status(const head::HeadCore& core, const std::string& head_name, proto::StatusReply::Builder s) {
  const auto& state = core.scheduler().cluster();
  const auto& table = core.nodes();
  s.setHeadName(head_name);
  s.setPendingLeases(static_cast<std::uint32_t>(core.leases().pending()));
  std::uint32_t alive = 0, dead = 0;
  for (const auto& n : state.nodes()) (n.alive ? alive : dead)++;
  s.setDeadNodes(dead);
  auto ns = s.initNodes(alive);
  const auto now = core.now();
  unsigned i = 0;
  for (const auto& n : state.nodes()) {
    if (!n.alive) continue;
    const auto& rec = table[n.index];
    proto::write(ns[i].initInfo(), n);
    ns[i].setHost(rec.host);
    if (!rec.reach.observed_host.empty()) {
      ns[i].setObservedAddress(rec.reach.observed_host + ":" + std::to_string(rec.reach.observed_port));
      ns[i].setLocalHost(rec.reach.local_host);
      ns[i].setPath(transport::path_of(rec.reach));
      ns[i].setInbound(transport::to_string(rec.reach.inbound));
    }
    ns[i].setActiveLeases(rec.active_leases);
    ns[i].setStoreUsedBytes(rec.store.used);
    ns[i].setStoreCapacityBytes(rec.store.capacity);
    ns[i].setStoreObjects(rec.store.objects);
    ns[i].setSpilledBytes(rec.store.spilled);
    std::uint64_t bytes = 0;
    for (const auto& [k, size] : rec.objects) bytes += size;
    ns[i].setDirectoryObjects(rec.objects.size());
    ns[i].setDirectoryBytes(bytes);
    ns[i].setVerification(rec.verification);
    auto tl = ns[i].initTelemetry(static_cast<unsigned>(rec.telemetry.size()));
    for (unsigned k = 0; k < rec.telemetry.size(); ++k) proto::write(tl[k], rec.telemetry[k]);
    ns[i].setLastHeartbeatMs(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now - rec.last_heartbeat).count()));
    ++i;
  }
  const auto& jobs = core.jobs().all();
  auto js = s.initJobs(static_cast<unsigned>(jobs.size()));
  i = 0;
  for (const auto& [id, j] : jobs) {
    js[i].setJobId(j.id);
    js[i].setDriver(j.driver);
    js[i].setState(head::to_string(j.state));
    js[i].setLeasesGranted(j.leases_granted);
    js[i].setActiveLeases(j.active_leases);
    js[i].setStartedUnixMs(static_cast<std::uint64_t>(j.started_unix_ms));
    js[i].setEndedUnixMs(static_cast<std::uint64_t>(j.ended_unix_ms));
    if (auto t = core.tasks().summary(j.id); !t.is_null()) js[i].setTasksJson(t.dump());
    if (!j.driver_reach.observed_host.empty())
      js[i].setDriverReach(transport::path_of(j.driver_reach));
    ++i;
  }
  s.setUsersJson(users_json(core).dump());
  if (!core.check_verdicts().empty()) {
    nlohmann::json checks{{"verdicts", core.check_verdicts()}, {"nodes", nlohmann::json::object()}};
    for (const auto& [name, t] : core.check_tallies()) checks["nodes"][name] = {{"passed", t.passed}, {"failed", t.failed}};
    s.setChecksJson(checks.dump());
  }
}

kj::Array<capnp::word> head_status_message(const head::HeadCore& core, const std::string& head_name) {
  capnp::MallocMessageBuilder out;
  fill_status(core, head_name, out.initRoot<proto::StatusReply>());
  return capnp::messageToFlatArray(out);
}

nlohmann::json status_document_json(kj::ArrayPtr<const capnp::word> message) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = std::numeric_limits<std::uint64_t>::max() / 16;  // our own message, however large
  capnp::FlatArrayMessageReader reader(message, o);
  return status_json(reader.getRoot<proto::StatusReply>());
}

std::string status_document(kj::ArrayPtr<const capnp::word> message) {
  return status_document_json(message).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string head_status_document(const head::HeadCore& core, const std::string& head_name) {
  capnp::MallocMessageBuilder out;
  auto r = out.initRoot<proto::StatusReply>();
  fill_status(core, head_name, r);
  return status_json(r.asReader()).dump();
}

nlohmann::json status_json(proto::StatusReply::Reader r) {
  nlohmann::json j;
  j["head"] = std::string(r.getHeadName());
  j["pending_leases"] = r.getPendingLeases();
  j["dead_nodes"] = r.getDeadNodes();
  j["nodes"] = nlohmann::json::array();
  for (auto ns : r.getNodes()) {
    auto n = proto::read(ns.getInfo());
    nlohmann::json jn;
    jn["name"] = n.name;
    jn["index"] = n.index;
    jn["host"] = std::string(ns.getHost());
    if (ns.getPath().size())
      jn["reach"] = {{"path", std::string(ns.getPath())}, {"observed", std::string(ns.getObservedAddress())},
                     {"local", std::string(ns.getLocalHost())}, {"inbound", std::string(ns.getInbound())}};
    jn["state"] = n.alive ? "alive" : "dead";
    jn["cpus"] = sched::from_milli(n.total.cpus);
    jn["cpus_available"] = sched::from_milli(n.available.cpus);
    jn["memory_gib"] = double(n.total.memory_mib) / 1024.0;
    jn["gpus"] = nlohmann::json::array();
    for (const auto& g : n.gpus)
      jn["gpus"].push_back({{"model", g.model},
                            {"memory_gib", double(g.memory_mib) / 1024.0},
                            {"compute_capability", g.compute_capability},
                            {"free", sched::from_milli(g.free)},
                            {"verified", g.verified},
                            {"tflops", g.tflops}});
    jn["labels"] = n.labels;
    jn["custom"] = nlohmann::json::object();
    for (const auto& [k, v] : n.total.custom) jn["custom"][k] = sched::from_milli(v);
    jn["price_per_gpu_hour"] = n.price_per_gpu_hour;
    jn["reputation"] = n.reputation;
    jn["active_leases"] = ns.getActiveLeases();
    jn["last_heartbeat_ms"] = ns.getLastHeartbeatMs();
    jn["object_store_used_bytes"] = ns.getStoreUsedBytes();
    jn["object_store_capacity_bytes"] = ns.getStoreCapacityBytes();
    jn["object_store_objects"] = ns.getStoreObjects();
    jn["spilled_bytes"] = ns.getSpilledBytes();
    jn["directory_objects"] = ns.getDirectoryObjects();
    jn["directory_bytes"] = ns.getDirectoryBytes();
    jn["verification"] = std::string(ns.getVerification());
    jn["telemetry"] = nlohmann::json::array();
    for (auto t : ns.getTelemetry())
      jn["telemetry"].push_back({{"index", t.getIndex()},
                                 {"temperature_c", t.getTemperatureC()},
                                 {"power_w", t.getPowerW()},
                                 {"power_limit_w", t.getPowerLimitW()},
                                 {"utilization_pct", t.getUtilizationPct()},
                                 {"memory_used_gib", t.getMemoryUsedGib()},
                                 {"sm_clock_mhz", t.getSmClockMhz()},
                                 {"memory_clock_mhz", t.getMemoryClockMhz()}});
    j["nodes"].push_back(jn);
  }
  j["jobs"] = nlohmann::json::array();
  for (auto js : r.getJobs()) {
    j["jobs"].push_back({{"id", std::string(js.getJobId())},
                         {"driver", std::string(js.getDriver())},
                         {"state", std::string(js.getState())},
                         {"leases_granted", js.getLeasesGranted()},
                         {"active_leases", js.getActiveLeases()},
                         {"started_unix_ms", js.getStartedUnixMs()},
                         {"ended_unix_ms", js.getEndedUnixMs()}});
    const std::string tasks = js.getTasksJson();
    auto parsed = tasks.empty() ? nlohmann::json(nullptr) : nlohmann::json::parse(tasks, nullptr, false);
    j["jobs"].back()["tasks"] = parsed.is_discarded() ? nlohmann::json(nullptr) : parsed;
    if (js.getDriverReach().size()) j["jobs"].back()["driver_reach"] = std::string(js.getDriverReach());
  }
  const std::string users = r.getUsersJson();
  auto parsed_users = users.empty() ? nlohmann::json::array() : nlohmann::json::parse(users, nullptr, false);
  j["users"] = parsed_users.is_array() ? parsed_users : nlohmann::json::array();
  if (const std::string relay = r.getRelayJson(); !relay.empty()) {
    auto parsed = nlohmann::json::parse(relay, nullptr, false);
    if (parsed.is_object()) j["relay"] = parsed;
  }
  // Spot checks: cluster-wide verdicts, and each node's checks passed and failed.
  const std::string checks_text = r.getChecksJson();
  auto checks = checks_text.empty() ? nlohmann::json::object() : nlohmann::json::parse(checks_text, nullptr, false);
  if (!checks.is_object()) checks = nlohmann::json::object();
  j["spot_checks"] = checks.value("verdicts", nlohmann::json::object());
  const auto per_node = checks.value("nodes", nlohmann::json::object());
  for (auto& n : j["nodes"]) {
    const auto t = per_node.is_object() ? per_node.value(n["name"].get<std::string>(), nlohmann::json::object()) : nlohmann::json::object();
    n["checks"] = {{"passed", t.is_object() ? t.value("passed", 0) : 0}, {"failed", t.is_object() ? t.value("failed", 0) : 0}};
  }
  return j;
}

namespace {
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}
}  // namespace

// One metric family: its HELP and TYPE lines, then each sample.
class Family {
 public:
  Family(std::ostringstream& o, const char* name, const char* type, const char* help) : o_(o), name_(name) {
    o_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  // labels: {{"node", "a"}, {"gpu", "0"}}
  Family& add(std::initializer_list<std::pair<const char*, std::string>> labels, double value) {
    o_ << name_;
    if (labels.size()) {
      o_ << "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        o_ << (first ? "" : ",") << k << "=\"" << label(v) << "\"";
        first = false;
      }
      o_ << "}";
    }
    o_ << " " << value << "\n";
    return *this;
  }

 private:
  std::ostringstream& o_;
  const char* name_;
};

std::string prometheus_metrics(const nlohmann::json& s) {
  std::ostringstream o;
  o.precision(15);
  const auto& nodes = s["nodes"];
  auto name_of = [](const nlohmann::json& n) { return n["name"].get<std::string>(); };
  auto per_node = [&](const char* metric, const char* type, const char* help, auto value) {
    Family f(o, metric, type, help);
    for (const auto& n : nodes) f.add({{"node", name_of(n)}}, value(n));
  };
  auto per_gpu = [&](const char* metric, const char* help, auto value) {
    Family f(o, metric, "gauge", help);
    for (const auto& n : nodes)
      for (const auto& t : n.value("telemetry", nlohmann::json::array()))
        f.add({{"node", name_of(n)}, {"gpu", std::to_string(t["index"].get<int>())}}, value(t));
  };
  Family(o, "iogrid_nodes", "gauge", "Nodes known to the head, by state.")
      .add({{"state", "alive"}}, double(nodes.size()))
      .add({{"state", "dead"}}, s["dead_nodes"].get<double>());
  Family(o, "iogrid_pending_leases", "gauge", "Lease requests waiting for room.").add({}, s["pending_leases"].get<double>());
  {
    Family f(o, "iogrid_node_cpus", "gauge", "CPUs of a node (total and available).");
    for (const auto& n : nodes) {
      f.add({{"node", name_of(n)}, {"kind", "total"}}, n["cpus"].get<double>());
      f.add({{"node", name_of(n)}, {"kind", "available"}}, n["cpus_available"].get<double>());
    }
  }
  if (s.contains("relay") && s["relay"].is_object()) {
    // The head's relay (relay_server.hpp): workers reaching drivers behind a NAT.
    const auto& r = s["relay"];
    Family(o, "iogrid_relay_sessions_total", "counter", "Connections the head's relay spliced.").add({}, r.value("sessions", 0.0));
    Family(o, "iogrid_relay_active", "gauge", "Relayed connections open now.").add({}, r.value("active", 0.0));
    Family(o, "iogrid_relay_refused_total", "counter", "Connections the relay refused (unsigned, unknown target or session).")
        .add({}, r.value("refused", 0.0));
    Family(o, "iogrid_relay_bytes_total", "counter", "Bytes the relay copied (both ways).").add({}, r.value("bytes", 0.0));
    Family(o, "iogrid_relay_punches_total", "counter", "Relayed pairs told to try a direct connection (hole punching).")
        .add({}, r.value("punches", 0.0));
    // Tunnels (iogrid tunnel): open now, per node and port.
    std::map<std::string, double> open;
    for (const auto& t : r.value("tunnels", nlohmann::json::array())) open[t.value("target", std::string())] += 1;
    Family tunnels(o, "iogrid_relay_tunnels_open", "gauge", "Tunnels (iogrid tunnel) open now, by node:port.");
    for (const auto& [target, n] : open) tunnels.add({{"tunnel", target}}, n);
    // Operators' relays (iogrid node --relay), by node, as their heartbeats report them.
    const auto operators = r.value("operators", nlohmann::json::array());
    if (!operators.empty()) {
      Family sessions(o, "iogrid_node_relay_sessions_total", "counter", "Connections an operator's relay spliced, by node.");
      Family bytes(o, "iogrid_node_relay_bytes_total", "counter", "Bytes an operator's relay copied (both ways), by node.");
      Family users(o, "iogrid_node_relay_users", "gauge", "Processes the head gave an operator's relay to, by node.");
      for (const auto& op : operators) {
        const std::string node = op.value("node", std::string());
        sessions.add({{"node", node}}, op.value("sessions", 0.0));
        bytes.add({{"node", node}}, op.value("bytes", 0.0));
        users.add({{"node", node}}, op.value("users", 0.0));
      }
    }
  }
  {
    const auto users = s.value("users", nlohmann::json::array());
    auto per_user = [&](const char* metric, const char* help, const char* key) {
      Family f(o, metric, "gauge", help);
      for (const auto& u : users) f.add({{"user", u.value("user", std::string())}}, u.value(key, 0.0));
    };
    per_user("iogrid_user_share", "A user's dominant share of the cluster now (CPUs or GPUs held over the cluster's).", "share");
    per_user("iogrid_user_fair_share", "The share a user's weight entitles it to among the users with work.", "fair_share");
    per_user("iogrid_user_requests_waiting", "A user's lease requests in the scheduler's queue.", "waiting");
    per_user("iogrid_user_gpus", "GPUs a user's leases hold.", "gpus");
  }
  per_node("iogrid_node_memory_bytes", "gauge", "Memory a node offers.",
           [](const nlohmann::json& n) { return n.value("memory_gib", 0.0) * 1073741824.0; });
  per_node("iogrid_node_gpus", "gauge", "GPUs of a node.", [](const nlohmann::json& n) { return double(n["gpus"].size()); });
  per_node("iogrid_node_reputation", "gauge", "A node's reputation (0..1; placement prefers higher).",
           [](const nlohmann::json& n) { return n.value("reputation", 1.0); });
  per_node("iogrid_node_spot_checks_failed_total", "counter", "Spot checks a node's result lost (outvoted by two other providers).",
           [](const nlohmann::json& n) { return n.contains("checks") ? n["checks"].value("failed", 0.0) : 0.0; });
  per_node("iogrid_node_spot_checks_passed_total", "counter", "Spot checks a node's result agreed with another provider's.",
           [](const nlohmann::json& n) { return n.contains("checks") ? n["checks"].value("passed", 0.0) : 0.0; });
  per_node("iogrid_node_price_per_gpu_hour", "gauge", "A node's price per GPU-hour.",
           [](const nlohmann::json& n) { return n.value("price_per_gpu_hour", 0.0); });
  per_node("iogrid_node_heartbeat_age_seconds", "gauge", "Time since the head last heard a node's heartbeat.",
           [](const nlohmann::json& n) { return n.value("last_heartbeat_ms", 0.0) / 1000.0; });
  per_node("iogrid_node_active_leases", "gauge", "Leases running on a node.",
           [](const nlohmann::json& n) { return n["active_leases"].get<double>(); });
  {
    Family f(o, "iogrid_node_verified", "gauge", "A node's GPU verification state (1 for its current state).");
    for (const auto& n : nodes) f.add({{"node", name_of(n)}, {"state", n.value("verification", std::string("none"))}}, 1);
  }
  per_node("iogrid_object_store_used_bytes", "gauge", "Bytes in a node's object store.",
           [](const nlohmann::json& n) { return n.value("object_store_used_bytes", 0.0); });
  per_node("iogrid_object_store_capacity_bytes", "gauge", "Capacity of a node's object store.",
           [](const nlohmann::json& n) { return n.value("object_store_capacity_bytes", 0.0); });
  per_node("iogrid_object_store_objects", "gauge", "Objects in a node's object store.",
           [](const nlohmann::json& n) { return n.value("object_store_objects", 0.0); });
  per_node("iogrid_object_store_spilled_bytes", "gauge", "Bytes a node's object store spilled to disk.",
           [](const nlohmann::json& n) { return n.value("spilled_bytes", 0.0); });
  per_node("iogrid_directory_bytes", "gauge", "Bytes of the objects the head's directory places on a node.",
           [](const nlohmann::json& n) { return n.value("directory_bytes", 0.0); });
  per_gpu("iogrid_gpu_utilization_percent", "GPU utilisation (NVML).",
          [](const nlohmann::json& t) { return t["utilization_pct"].get<double>(); });
  per_gpu("iogrid_gpu_temperature_celsius", "GPU temperature (NVML).",
          [](const nlohmann::json& t) { return t["temperature_c"].get<double>(); });
  per_gpu("iogrid_gpu_power_watts", "GPU power draw (NVML).", [](const nlohmann::json& t) { return t["power_w"].get<double>(); });
  per_gpu("iogrid_gpu_power_limit_watts", "GPU power limit (NVML).",
          [](const nlohmann::json& t) { return t.value("power_limit_w", 0.0); });
  per_gpu("iogrid_gpu_memory_used_bytes", "GPU memory in use (NVML).",
          [](const nlohmann::json& t) { return t.value("memory_used_gib", 0.0) * 1073741824.0; });
  per_gpu("iogrid_gpu_sm_clock_hertz", "GPU SM clock (NVML).",
          [](const nlohmann::json& t) { return t.value("sm_clock_mhz", 0.0) * 1e6; });
  std::map<std::string, double> by_state;
  double leases = 0;
  for (const auto& j : s["jobs"]) {
    by_state[j["state"].get<std::string>()] += 1;
    leases += j["leases_granted"].get<double>();
  }
  {
    Family f(o, "iogrid_jobs", "gauge", "Jobs by state.");
    for (const auto& [st, n] : by_state) f.add({{"state", st}}, n);
  }
  {
    Family f(o, "iogrid_job_active_leases", "gauge", "Leases a running job holds.");
    for (const auto& j : s["jobs"])
      if (j["state"] == "running") f.add({{"job", j["id"].get<std::string>()}}, j["active_leases"].get<double>());
  }
  Family(o, "iogrid_leases_granted_total", "counter", "Leases granted to all jobs.").add({}, leases);
  // Tasks and actor calls as their owners report them (runtime/head/task_book.hpp).
  {
    Family f(o, "iogrid_tasks", "gauge", "Tasks by job, kind (task, actor_create, actor_call) and state.");
    for (const auto& j : s["jobs"]) {
      const auto& t = j.value("tasks", nlohmann::json());
      if (!t.is_object()) continue;
      for (const char* kind : {"task", "actor_call"})
        for (const char* st : {"waiting", "running", "finished", "failed"})
          if (t.contains(kind)) f.add({{"job", j["id"].get<std::string>()}, {"kind", kind}, {"state", st}}, t[kind].value(st, 0.0));
    }
  }
  {
    Family f(o, "iogrid_actors", "gauge", "Actors by job and state (pending, alive, restarting, dead).");
    for (const auto& j : s["jobs"]) {
      const auto& t = j.value("tasks", nlohmann::json());
      if (!t.is_object() || !t.contains("actors") || !t["actors"].is_object()) continue;
      for (const auto& [st, n] : t["actors"].items())
        if (n.is_number()) f.add({{"job", j["id"].get<std::string>()}, {"state", st}}, n.get<double>());
    }
  }
  {
    o << "# HELP iogrid_task_duration_seconds How long tasks ran (dispatch to outcome), by job.\n"
         "# TYPE iogrid_task_duration_seconds histogram\n";
    for (const auto& j : s["jobs"]) {
      const auto& t = j.value("tasks", nlohmann::json());
      if (!t.is_object() || !t.contains("duration")) continue;
      const auto& d = t["duration"];
      const auto& b = d["buckets"];
      const auto& c = d["counts"];
      if (!b.is_array() || !c.is_array() || c.size() != b.size() + 1) continue;
      const auto job = label(j["id"].get<std::string>());
      double cum = 0;
      for (std::size_t i = 0; i <= b.size(); ++i) {
        cum += c[i].get<double>();
        o << "iogrid_task_duration_seconds_bucket{job=\"" << job << "\",le=\"";
        if (i < b.size()) o << b[i].get<double>();
        else o << "+Inf";
        o << "\"} " << cum << "\n";
      }
      o << "iogrid_task_duration_seconds_sum{job=\"" << job << "\"} " << d["sum_s"].get<double>() << "\n";
      o << "iogrid_task_duration_seconds_count{job=\"" << job << "\"} " << cum << "\n";
    }
  }
  return o.str();
}

}  // namespace iogrid::runtime::cluster
