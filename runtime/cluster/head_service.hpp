// HeadService: the head of a cluster as a network service (`iogrid head`). A thin shell over the head core
// (runtime/head/head_core.hpp), which holds every rule of the head: this file decodes the Cap'n Proto
// envelopes that arrive on the endpoint, calls the core, and encodes what the core asks to send. Nodes are
// known to the core by index (the connection that registered them), owners (drivers, workers with nested
// tasks) by their connection id; a node whose connection drops is dead, an owner whose connection drops is gone.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/cluster/relay_server.hpp"
#include "runtime/head/clock.hpp"
#include "runtime/head/history.hpp"
#include "runtime/transport/endpoint.hpp"
#include "runtime/transport/tls.hpp"
#include "scheduler/policy.hpp"

namespace iogrid::runtime::cluster {

struct HeadOptions {
  std::uint16_t port = 6380;
  std::string bind = "0.0.0.0";
  std::string token;
  std::string state_dir;                            // SQLite tables (nodes, jobs, KV, the ledger's journal) and uploaded executables; empty: no state kept
  double verify_fraction = 0;                        // spot checks of tasks that set no share (drivers apply it)
  double network_fee = 0;                           // the network's share of each charge, 0..1 (scheduler/ledger.hpp)
  std::chrono::milliseconds pricing_round{60000};   // posted prices move this often (scheduler/pricing.hpp); 0: never
  std::string policy = sched::kDefaultPolicy;
  std::chrono::milliseconds node_timeout{2500};     // declared dead after this long without a heartbeat (checked every 100 ms)
  std::chrono::milliseconds heartbeat{500};         // what nodes are told to send
  std::chrono::milliseconds driver_reconnect{30000};
  int dashboard_port = 8265;                         // -1: no dashboard
  bool dashboard_port_explicit = false;              // a busy explicit port is an error; the default only warns
  std::string dashboard_bind = "127.0.0.1";
  std::string ui_keys_file;                          // the dashboard's user keys (iogrid ui-key); empty: the cluster token only
  bool dashboard_open = false;                       // nobody needs to log in to the dashboard (a trusted machine)
  transport::TlsConfig tls;
  std::map<std::string, double> user_weights;       // fair share between users (default 1 each)
  std::chrono::milliseconds fair_quantum{2000};     // a lease owed to a waiting job yields once this old (0: never)
  int verify_size = 8192;                           // GEMM size of the join-time GPU verification
  head::HistoryOptions history;                     // telemetry and events over time (kept in STATE/history.db)
  int relay_port = 0;                               // the relay (relay_server.hpp): 0 any free port, -1 none
  std::uint64_t relay_max_bytes = 0;                // per relayed connection; 0: no limit
  // Nodes whose relay (`iogrid node --relay`) this head uses: their names, or "*" for any node. A relay sees
  // who talks to whom and, without TLS, the bytes: providers are not trusted with that unless named here.
  std::set<std::string> relay_nodes;
};

std::shared_ptr<transport::Service> make_head_service(HeadOptions opts);
// The head's status as JSON, built on the endpoint's thread when asked (the dashboard; any thread may call).
nlohmann::json head_status_tree(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head);

// An operator command (HeadCore::admin: cluster.create|list|delete, ledger, logs) run on the endpoint's thread
// for the dashboard, as `who`: the answer's JSON text; throws iogrid::Error with the reason (or when the head does
// not answer within 5 s). Commands answered later (verify) are refused.
std::string head_admin(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head,
                       const std::string& command, const std::string& args_json, const std::string& who);

// The head's history (thread-safe; the dashboard reads it from its own thread).
std::shared_ptr<head::History> head_history(const std::shared_ptr<transport::Service>& head);

// The head's second source of node life signs (the liveness datagrams' listener), set on the endpoint's thread.
// The head's relay (relay_server.hpp) listens on `port`: a lease of a job whose driver cannot be dialled tells
// its node to reach the driver through it; `stats` (thread-safe) goes into the status and /metrics. Any thread.
void set_head_relay(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head, std::uint16_t port,
                    std::function<RelayStats()> stats);
// RelayOptions::ask_target for the head's relay: asks job `target`'s driver (over its control connection) to
// dial the relay with `session`; false when the job has no connected driver. Any thread.
std::function<bool(const std::string&, const std::string&, bool)> head_relay_asker(const caf::actor& endpoint,
                                                                                  const std::shared_ptr<transport::Service>& head);
void set_head_heard(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head,
                    std::function<std::optional<head::Clock::time_point>(std::uint32_t)> heard);

}  // namespace iogrid::runtime::cluster
