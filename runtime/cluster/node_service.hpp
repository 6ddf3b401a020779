// NodeService: a machine's daemon (the NodeActor of the design, as a network service). It joins the head with
// the machine's resources, sends heartbeats, and runs worker processes: for each lease the head grants here it
// reuses an idle worker process of that job or starts one from the job's executable (fetched from the head
// once, cached by content hash), and tells it which owner to serve.
// Rules:
// - Large results of its workers live in the node's object store and are served by its data plane until
//   their owner frees them or their job ends.
// - A worker process belongs to one job; it dies with the node (parent-death signal) and is stopped when its
//   job ends or after `worker_idle` without a lease.
// - A worker process that exits while serving a lease (a crash in user code) takes only itself down: the
//   node hands the lease's resources back and the owner, whose connection dropped, retries its tasks.
// - When the head connection is lost the node keeps its workers (they talk to their owners directly) and
//   rejoins under the same identity, with the leases they still serve, as soon as the head answers again.
//   A restarted node daemon is a new node.
#pragma once

#include <chrono>
#include <memory>
#include <string>

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
};

std::shared_ptr<transport::Service> make_node_service(NodeDaemonOptions opts);

}  // namespace iogrid::runtime::cluster
