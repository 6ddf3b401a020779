#include "runtime/cluster/status_json.hpp"

#include <sstream>

#include "runtime/proto/convert.hpp"

namespace iogrid::runtime::cluster {

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
                            {"verified", g.verified}});
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
  for (auto js : r.getJobs())
    j["jobs"].push_back({{"id", std::string(js.getJobId())},
                         {"driver", std::string(js.getDriver())},
                         {"state", std::string(js.getState())},
                         {"leases_granted", js.getLeasesGranted()},
                         {"active_leases", js.getActiveLeases()},
                         {"started_unix_ms", js.getStartedUnixMs()},
                         {"ended_unix_ms", js.getEndedUnixMs()}});
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

std::string prometheus_metrics(const nlohmann::json& s) {
  std::ostringstream o;
  o << "# HELP iogrid_nodes Nodes known to the head, by state.\n# TYPE iogrid_nodes gauge\n";
  o << "iogrid_nodes{state=\"alive\"} " << s["nodes"].size() << "\n";
  o << "iogrid_nodes{state=\"dead\"} " << s["dead_nodes"].get<long>() << "\n";
  o << "# HELP iogrid_pending_leases Lease requests waiting for room.\n# TYPE iogrid_pending_leases gauge\n";
  o << "iogrid_pending_leases " << s["pending_leases"].get<long>() << "\n";
  o << "# HELP iogrid_node_cpus CPUs of a node (total and available).\n# TYPE iogrid_node_cpus gauge\n";
  for (const auto& n : s["nodes"]) {
    auto name = label(n["name"].get<std::string>());
    o << "iogrid_node_cpus{node=\"" << name << "\",kind=\"total\"} " << n["cpus"].get<double>() << "\n";
    o << "iogrid_node_cpus{node=\"" << name << "\",kind=\"available\"} " << n["cpus_available"].get<double>() << "\n";
  }
  o << "# HELP iogrid_node_gpus GPUs of a node.\n# TYPE iogrid_node_gpus gauge\n";
  for (const auto& n : s["nodes"]) o << "iogrid_node_gpus{node=\"" << label(n["name"].get<std::string>()) << "\"} " << n["gpus"].size() << "\n";
  o << "# HELP iogrid_gpu_utilization_percent GPU utilisation (NVML).\n# TYPE iogrid_gpu_utilization_percent gauge\n";
  for (const auto& n : s["nodes"])
    for (const auto& t : n.value("telemetry", nlohmann::json::array()))
      o << "iogrid_gpu_utilization_percent{node=\"" << label(n["name"].get<std::string>()) << "\",gpu=\""
        << t["index"].get<int>() << "\"} " << t["utilization_pct"].get<double>() << "\n";
  o << "# HELP iogrid_gpu_temperature_celsius GPU temperature (NVML).\n# TYPE iogrid_gpu_temperature_celsius gauge\n";
  for (const auto& n : s["nodes"])
    for (const auto& t : n.value("telemetry", nlohmann::json::array()))
      o << "iogrid_gpu_temperature_celsius{node=\"" << label(n["name"].get<std::string>()) << "\",gpu=\""
        << t["index"].get<int>() << "\"} " << t["temperature_c"].get<double>() << "\n";
  o << "# HELP iogrid_gpu_power_watts GPU power draw (NVML).\n# TYPE iogrid_gpu_power_watts gauge\n";
  for (const auto& n : s["nodes"])
    for (const auto& t : n.value("telemetry", nlohmann::json::array()))
      o << "iogrid_gpu_power_watts{node=\"" << label(n["name"].get<std::string>()) << "\",gpu=\""
        << t["index"].get<int>() << "\"} " << t["power_w"].get<double>() << "\n";
  o << "# HELP iogrid_node_active_leases Leases running on a node.\n# TYPE iogrid_node_active_leases gauge\n";
  for (const auto& n : s["nodes"])
    o << "iogrid_node_active_leases{node=\"" << label(n["name"].get<std::string>()) << "\"} " << n["active_leases"].get<long>() << "\n";
  o << "# HELP iogrid_object_store_used_bytes Bytes in a node's object store.\n# TYPE iogrid_object_store_used_bytes gauge\n";
  for (const auto& n : s["nodes"])
    o << "iogrid_object_store_used_bytes{node=\"" << label(n["name"].get<std::string>()) << "\"} "
      << n.value("object_store_used_bytes", 0L) << "\n";
  o << "# HELP iogrid_jobs Jobs by state.\n# TYPE iogrid_jobs gauge\n";
  std::map<std::string, long> by_state;
  long leases = 0;
  for (const auto& j : s["jobs"]) {
    by_state[j["state"].get<std::string>()]++;
    leases += j["leases_granted"].get<long>();
  }
  for (const auto& [st, n] : by_state) o << "iogrid_jobs{state=\"" << label(st) << "\"} " << n << "\n";
  o << "# HELP iogrid_leases_granted_total Leases granted to all jobs.\n# TYPE iogrid_leases_granted_total counter\n";
  o << "iogrid_leases_granted_total " << leases << "\n";
  return o.str();
}

}  // namespace iogrid::runtime::cluster
