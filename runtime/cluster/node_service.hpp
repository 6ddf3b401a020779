// NodeService: a machine's daemon (the NodeActor of the design, as a network service). It joins the head with
// the machine's resources, sends heartbeats, and runs worker processes: each lease the head grants here goes
// to the job's worker process on this node, started from the job's executable (fetched from the head once,
// cached by content hash) when there is none, which serves it on a thread of its own for the lease's owner.
// Rules:
// - Bound: at most one worker process per job per node. Every lease of a job here is a thread of that process,
//   so a task parked in get (which lends its lease's CPUs, as in embedded mode) makes room for one more thread,
//   never one more process: a recursive program cannot fill the machine with processes, and never deadlocks
//   for want of one. Threads are bounded by the leases the head grants here (the node's CPUs and GPUs, plus the
//   CPUs lent by parked tasks); a waiting task also runs its own not-yet-started children inline.
// - Large results of its workers live in the node's object store and are served by its data plane until
//   their owner frees them or their job ends.
// - A worker process belongs to one job; it dies with the node (parent-death signal) and is stopped when its
//   job ends or after `worker_idle` without a lease. It runs at nice 10, below the daemon (heartbeats first).
// - A worker process that exits while serving leases (a crash in user code) takes only itself down: the node
//   hands its leases' resources back and their owners, whose connections dropped, retry their tasks.
// - When the head connection is lost the node keeps its workers (they talk to their owners directly) and
//   rejoins under the same identity, with the leases they still serve, as soon as the head answers again.
//   A restarted node daemon is a new node.
// - Relays: the node reaches a process that cannot be dialled through the relay the head named when it joined
//   (the head's, or an operator's relay on another node) and moves when told (UseRelay). A node marked as a
//   relay runs one (relay_server.hpp) whose targets the head finds: it forwards each ask to the head.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/transport/endpoint.hpp"
#include "runtime/transport/tls.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::runtime::cluster {

struct NodeDaemonOptions {
  std::string head_host;
  std::uint16_t head_port = 0;
  std::string token;
  sched::Node node;                                  // resources, GPUs, labels, price, reputation
  std::string work_dir;                              // code cache and worker logs; default under $TMPDIR
  std::chrono::milliseconds worker_idle{10000};
  std::chrono::milliseconds reconnect{1000};
  std::int64_t object_store_bytes = 0;               // 0: a quarter of this machine's memory
  transport::TlsConfig tls;                          // also handed to its worker processes
  std::string telemetry_file;                        // telemetry read from this JSON file, not NVML (tests, demos)
  std::vector<std::uint16_t> allow_tunnel;           // local ports `iogrid tunnel` may reach (tunnel_ends.hpp)
  // An operator's relay (`iogrid node --relay`): -1 none, 0 any free port, else this port; on relay_bind. The
  // head uses it once it can dial it, for processes that join from then on (head_service.cpp says the rules).
  int relay_port = -1;
  std::string relay_bind = "0.0.0.0";
  std::uint64_t relay_max_bytes = 0;                 // per relayed connection; 0: no limit
};

std::shared_ptr<transport::Service> make_node_service(NodeDaemonOptions opts);

}  // namespace iogrid::runtime::cluster
