// The resource model: what nodes have and what requests ask for.
// Quantities are integers in thousandths ("milli") so fractional GPUs and CPUs add up exactly.
// A node's GPUs are listed one by one, each with its own free fraction, so fractional requests
// never over-commit one device and whole-GPU requests get whole devices.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scheduler/pricing.hpp"

namespace iogrid::sched {

using Milli = std::int64_t;
inline constexpr Milli kOne = 1000;
Milli to_milli(double v);
double from_milli(Milli v);

struct Gpu {
  std::string model;            // "H100", "A100", ...
  std::int64_t memory_mib = 0;
  double compute_capability = 0;
  double tflops = 0;            // verified or claimed throughput; 0 unknown
  bool verified = true;
  Milli free = kOne;            // unallocated fraction of this device
};

struct NodeResources {
  Milli cpus = 0;
  Milli memory_mib = 0;
  std::map<std::string, Milli> custom;
};

struct ResourceRequest {
  Milli cpus = kOne;
  Milli memory_mib = 0;
  Milli gpus = 0;                          // < 1000: a fraction of one GPU; otherwise whole GPUs (multiple of 1000)
  std::vector<std::string> gpu_models;     // accepted models; empty: any
  std::int64_t min_gpu_memory_mib = 0;
  double min_compute_capability = 0;
  std::map<std::string, Milli> custom;
  std::map<std::string, std::string> labels;  // every label must match the node's
  std::string node;                        // hard node affinity by name; empty: any node
  std::vector<std::string> avoid_nodes;    // never these nodes (by name): a spot check's second and third runs
  // GPU trust and market constraints (hard, except preferred_regions which only the market policy weighs).
  double min_gpu_tflops = 0;               // minimum measured (verified) throughput per GPU; 0: any
  bool allow_unverified = false;           // unverified GPUs receive no GPU work unless this is set
  double max_price = 0;                    // price ceiling per GPU-hour for GPU work; 0: none
  Tier tier = Tier::standard;              // GPU work pays its market's posted price x the tier's multiplier (pricing.hpp)
  double min_reputation = 0;               // reputation floor in [0,1]
  std::vector<std::string> preferred_regions;  // soft: the market policy prefers these regions
  std::uint64_t reservation = 0;           // run inside this reservation (a gang's bundles) only; 0: anywhere
  std::int32_t bundle = -1;                // with reservation: this bundle only; -1: any bundle with room
  int priority = 0;                        // queueing: higher first (see scheduler.hpp); not a resource

  // Human-readable form for errors: "{CPU 1, GPU 1 x A100|H100 >= 40 GiB}".
  std::string describe() const;
  // Equal requests have equal keys (the scheduling class of a task).
  std::string key() const;
};

// Splits "A100|H100" into {"A100", "H100"}.
std::vector<std::string> split_models(const std::string& models);

// The label that names a node's region ("eu", "us-east", ...); regions matter for gangs and the market.
inline constexpr const char* kRegionLabel = "region";

struct Node {
  std::uint32_t index = 0;
  std::string name;
  NodeResources total;
  NodeResources available;
  std::vector<Gpu> gpus;
  std::map<std::string, std::string> labels;
  double price_per_gpu_hour = 0;          // the provider's ask: its reserve (it gets no work paying less)
  double posted_price = 0;                // its market's posted price (scheduler/pricing.hpp); 0: none yet
  double reputation = 1.0;
  bool alive = true;

  std::string describe() const;  // "node-1 (8 CPU, 2 x A100 40 GiB, region=eu)"
  const std::string& region() const;  // the region label, or empty
};

// What a placement took from a node; handing it back to release() restores the node exactly.
struct Allocation {
  std::uint32_t node = 0;
  Milli cpus = 0;
  Milli memory_mib = 0;
  std::map<std::string, Milli> custom;
  std::vector<std::pair<std::uint32_t, Milli>> gpus;  // (device index on the node, fraction)
  // Set when drawn from a gang's bundle (the gang's ticket and the bundle): releasing it refills the bundle.
  std::uint64_t gang = 0;
  std::uint32_t bundle = 0;
  std::uint64_t lease = 0;  // the head's lease id, for its bookkeeping (0: none)
};

// GPUs an allocation holds (fractions add up: two halves are 1.0).
double gpu_count(const Allocation& a);

struct ClusterView {
  std::vector<Node> nodes;
};

}  // namespace iogrid::sched
