// HeadService: the head of a cluster (the HeadActor of the design, as a network service). It owns the node
// table (a sched::ClusterView), the job table, the executables uploaded by drivers (content-addressed), the
// key-value store and lease placement.
// Rules:
// - A node joins with its resources and is placed into the view under a fresh index (a restarted node is a
//   new node); it is dead after `node_timeout` without a heartbeat, or as soon as its connection drops.
//   Owners are told (NodeDead) so their leases there are re-placed.
// - An owner asks for leases of a resource shape; the head places each with the policy and tells the chosen
//   node to start a worker of the job for the owner; the node hands the resources back when the lease ends.
//   A request no node can ever satisfy fails at once, naming the closest node.
// - A job ends when its driver says so or its connection drops: every node stops the job's workers.
// - With a state directory, nodes, jobs, the key-value store and id counters are written through to SQLite;
//   a restarted head reloads them, takes nodes back under their old identity (with the leases they still
//   run) and lets running jobs' drivers resume.
#pragma once

#include <chrono>
#include <memory>
#include <map>
#include <string>

#include "runtime/transport/endpoint.hpp"
#include "runtime/transport/tls.hpp"

namespace iogrid::runtime::cluster {

struct HeadOptions {
  std::uint16_t port = 6380;
  std::string bind = "0.0.0.0";
  std::string token;
  std::string state_dir;                            // SQLite tables (nodes, jobs, KV) and uploaded executables; empty: no state kept
  std::string policy = "pack";
  std::chrono::milliseconds node_timeout{2500};     // declared dead after this long without a heartbeat (checked every 100 ms)
  std::chrono::milliseconds heartbeat{500};         // what nodes are told to send
  std::chrono::milliseconds driver_reconnect{30000};
  int dashboard_port = 8265;                         // -1: no dashboard
  bool dashboard_port_explicit = false;              // a busy explicit port is an error; the default only warns
  std::string dashboard_bind = "127.0.0.1";
  transport::TlsConfig tls;
  std::map<std::string, double> user_weights;       // fair share between users (default 1 each)
  int verify_size = 8192;                           // GEMM size of the join-time GPU verification
};

std::shared_ptr<transport::Service> make_head_service(HeadOptions opts);
// The head's status as JSON, built on the endpoint's thread when asked (the dashboard; any thread may call).
std::string head_status_json(const caf::actor& endpoint, const std::shared_ptr<transport::Service>& head);

}  // namespace iogrid::runtime::cluster
