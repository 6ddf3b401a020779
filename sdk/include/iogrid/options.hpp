// Options for init(), tasks and actors. Use designated initialisers:
//     iogrid::task(train).options({.num_cpus = 2, .num_gpus = 0.5, .gpu_model = "A100|H100"}).remote(...)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace iogrid {

// What a task or actor needs from the node it runs on.
struct TaskOptions {
  double num_cpus = 1;                 // CPU slots held while the task runs
  double num_gpus = 0;                 // whole GPUs, or a fraction of one (0.25)
  std::string gpu_model;               // accepted GPU models, '|'-separated ("A100|H100"); empty: any
  double min_gpu_memory_gib = 0;       // per GPU
  double min_compute_capability = 0;   // e.g. 8.0
  double memory_gib = 0;               // host memory held while running
  std::map<std::string, double> resources;        // custom resources
  std::map<std::string, std::string> labels;      // label selector: every key must match the node's label
  std::string node;                    // run on this node (by name); fails if it cannot ever fit there
  std::string cluster;                 // run inside this reservation ("c-7", see create_cluster); default:
                                       // the process's (InitOptions::cluster / IOGRID_CLUSTER), else anywhere
  int bundle = -1;                     // with cluster: run on this bundle (GPU) of it; -1: any with room
  double max_price = 0;                // price ceiling per GPU-hour for GPU work; 0: none
  std::vector<std::string> preferred_regions;  // soft preference (head --policy market weighs it)
  double min_reputation = 0;           // only nodes at least this reputable (0..1)
  double min_gpu_tflops = 0;           // minimum verified throughput per GPU
  bool allow_unverified_gpus = false;  // unverified GPUs get no GPU work unless this is set
  int priority = 0;                    // when resources are short, higher priority work is placed first
  // GPU work pays its market's posted price (`iogrid market`) x the tier: "spot" 0.6x and waits behind others
  // (priority -1), "standard" 1x (default), "urgent" 1.5x and goes first (priority +1). Only providers asking
  // at most what it pays take it; max_price caps what it pays.
  std::string tier;
  int max_retries = 3;                 // re-runs after a worker or node is lost
  bool retry_exceptions = false;       // also re-run when the task throws
  // Spot checks (untrusted providers): the task is deterministic, and this share of its runs is run again on
  // another provider and compared; a mismatch is settled by a third run, the provider that disagreed loses
  // reputation and the user gets the agreed result. -1: InitOptions::verify_fraction. 0: never checked.
  double verify_fraction = -1;
  double verify_tolerance = 0;         // 0: results must match bitwise; else relative tolerance for float/double
  std::string name;                    // shown in errors and logs; defaults to the function's name
};

struct ActorOptions {
  double num_cpus = 0;                 // held for the actor's lifetime (Ray's default: 0)
  double num_gpus = 0;
  std::string gpu_model;
  double min_gpu_memory_gib = 0;
  double min_compute_capability = 0;
  double memory_gib = 0;
  std::map<std::string, double> resources;
  std::map<std::string, std::string> labels;
  std::string node;
  std::string cluster;                 // as TaskOptions::cluster
  int bundle = -1;
  double max_price = 0;
  std::vector<std::string> preferred_regions;
  double min_reputation = 0;
  double min_gpu_tflops = 0;
  bool allow_unverified_gpus = false;
  int priority = 0;
  std::string tier;                    // as TaskOptions::tier
  int max_restarts = 0;                // restarts after the actor dies (-1: unlimited)
  // Calls running or queued when the actor restarts run again on the new incarnation, each up to this many
  // times (-1: unlimited; Ray's max_task_retries). 0: they fail with ActorDiedError. Calls may then run more
  // than once: use it for calls that are safe to repeat.
  int max_task_retries = 0;
  std::string name;                    // shown in errors, logs and the dashboard; default: the class name
};

// A GPU a virtual node declares (embedded mode), or one detected on a real node.
struct GpuOptions {
  std::string model = "generic";       // "H100", "A100", "RTX4090", ...
  double memory_gib = 16;
  double compute_capability = 8.0;
  int count = 1;
  double tflops = 0;                   // claimed/verified throughput; 0: unknown
};

// A node of the embedded cluster. A laptop can declare several heterogeneous virtual nodes.
struct NodeOptions {
  std::string name;                    // default: node-<index>
  double num_cpus = 0;                 // 0: this machine's hardware threads
  double memory_gib = 0;               // 0: this machine's memory
  std::vector<GpuOptions> gpus;
  std::map<std::string, double> resources;
  std::map<std::string, std::string> labels;  // region=eu, provider=...
  double price_per_gpu_hour = 0;
  double reputation = 1.0;
  std::int64_t object_store_bytes = 0; // 0: a quarter of this machine's memory
};

struct InitOptions {
  std::vector<NodeOptions> nodes;      // empty: one node with this machine's resources
  std::string address;                 // join a running cluster (also IOGRID_ADDRESS); empty: embedded
  std::string token_file;              // cluster token (also IOGRID_TOKEN_FILE); default ~/.iogrid/token
  std::string spill_dir;               // default: $TMPDIR/iogrid-spill-<pid>
  std::string log_level = "warn";      // trace, debug, info, warn, error, off (also IOGRID_LOG_LEVEL)
  int worker_threads_per_node = 0;     // cap on worker threads a node runs at once; 0: 4 x its CPUs + 8
  std::chrono::milliseconds lease_idle{10};   // a worker keeps a lease this long without work
  std::string cluster;                 // run every task and actor inside this reservation (also IOGRID_CLUSTER,
                                       // which `iogrid job submit --cluster ID` sets)
  int dashboard_port = -1;             // embedded: serve the head's dashboard and API on 127.0.0.1:PORT while the
                                       // program runs (0: any free port; also IOGRID_DASHBOARD_PORT); -1: none
  // The spot-check share of tasks that do not set TaskOptions::verify_fraction (also IOGRID_VERIFY_FRACTION);
  // -1: the head's `--verify-fraction` (cluster mode), else 0.
  double verify_fraction = -1;
  std::uint64_t verify_seed = 0;       // seeds which runs are checked; 0: random
};

}  // namespace iogrid
