// EmbeddedRuntime: head, nodes, job and workers inside the user's process (no sockets). The default
// mode and the substrate of most tests. Implements core::Core (through SubmitterCore).
// The SDK's init() converts its public InitOptions / NodeOptions into the EmbeddedOptions below.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/submitter_core.hpp"

namespace iogrid::runtime {

struct GpuSpec {  // `count` identical GPUs a virtual node declares
  std::string model = "generic";
  double memory_gib = 16;
  double compute_capability = 8.0;
  int count = 1;
  double tflops = 0;
};

struct NodeSpec {
  std::string name;                    // default: node-<index>
  double num_cpus = 0;                 // 0: this machine's hardware threads
  double memory_gib = 0;               // 0: this machine's memory
  std::vector<GpuSpec> gpus;
  std::map<std::string, double> resources;
  std::map<std::string, std::string> labels;
  double price_per_gpu_hour = 0;
  double reputation = 1.0;
  std::int64_t object_store_bytes = 0; // 0: a quarter of this machine's memory, shared among the nodes
};

struct EmbeddedOptions {
  std::vector<NodeSpec> nodes;         // empty: one node with this machine's resources and GPUs
  std::string spill_dir;               // default: $TMPDIR/iogrid-spill-<pid>
  std::chrono::milliseconds lease_idle{10};
  int dashboard_port = -1;             // serve the dashboard on 127.0.0.1:PORT (0: any free port); -1: none
  double verify_fraction = 0;          // spot checks of tasks that set no share (runtime/spot_checker.hpp)
  std::uint64_t verify_seed = 0;       // which runs are checked; 0: random
};

std::unique_ptr<SubmitterCore> start_embedded(const EmbeddedOptions& opts);

}  // namespace iogrid::runtime
