// Starting and stopping iogrid, and what a running task can ask about where it runs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "iogrid/options.hpp"

namespace iogrid {

// Starts the embedded cluster (default), or joins a running one when options.address or IOGRID_ADDRESS is set.
// Calling init() twice without shutdown() throws iogrid::RuntimeError.
// In a worker process started by a cluster node, init() runs the worker and never returns: call it first
// thing in main().
void init(InitOptions options = {});
// Reads --address HOST:PORT and --token-file F (also --address=...) from a program's arguments.
InitOptions options_from_args(int argc, char** argv, InitOptions base = {});
// Stops everything: queued tasks fail with a 'runtime stopped' error, running tasks finish first.
// Safe to call twice, or without init().
void shutdown();
bool is_initialized();

struct NodeInfo {
  std::string name;
  double num_cpus = 0;
  double available_cpus = 0;
  double memory_gib = 0;
  std::vector<GpuOptions> gpus;
  std::map<std::string, std::string> labels;
  std::int64_t object_store_used_bytes = 0;
  std::int64_t object_store_capacity_bytes = 0;
  std::int64_t spilled_bytes = 0;
};
std::vector<NodeInfo> nodes();

// Inside a task or actor method: the node it runs on ("driver" outside of tasks).
std::string current_node();

// The address processes on other machines of the cluster reach this process at: its machine's address as the
// head sees it (cluster mode), 127.0.0.1 in an embedded cluster. Collective groups listen there by default.
std::string current_host();

// Inside a task or actor method: the GPUs its lease holds, as device indices on its node with the fraction of
// each (empty for CPU work and outside of tasks). A GPU task uses these devices and no others.
struct GpuAssignment {
  int device = 0;
  double fraction = 1;
};
std::vector<GpuAssignment> current_gpus();

// The head's key-value store (rendezvous, small shared settings). Kept across head restarts in cluster mode
// when the head has --state. kv_get returns nullopt for a missing key.
void kv_put(const std::string& key, const std::string& value);
std::optional<std::string> kv_get(const std::string& key);

// Bytes this process pulled over the cluster data plane and the time it spent doing so (diagnostics).
struct TransferStats {
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::uint64_t fetches = 0;
  std::uint64_t last_bytes = 0;  // the most recent pull
  double last_seconds = 0;
  std::uint64_t relayed = 0;     // connections that went through the head's relay (the holder could not be dialled)
  std::uint64_t punched = 0;     // connections made direct by hole punching (neither side could be dialled)
};
TransferStats transfer_stats();

// This process's spot checks so far (TaskOptions::verify_fraction): runs drawn for a check, how they ended, and
// the runs they added (the checking overhead is extra_runs over the tasks that asked for checks).
struct SpotCheckStats {
  std::uint64_t draws = 0;       // successful runs of tasks that ask for checks (each drawn with its share)
  std::uint64_t agreed = 0;      // a second provider returned the same result
  std::uint64_t settled = 0;     // a mismatch a third provider settled: a provider was caught
  std::uint64_t unsettled = 0;   // three different results (the task failed)
  std::uint64_t unchecked = 0;   // drawn, but no check could complete (one node, a failed run, refs in the result)
  std::uint64_t extra_runs = 0;  // runs the checks added
};
SpotCheckStats spot_checks();

// Live object entries in this process (diagnostics: returns to its baseline once refs are dropped).
std::int64_t live_objects();

}  // namespace iogrid
