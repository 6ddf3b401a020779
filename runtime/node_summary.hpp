// NodeSummary: what a running runtime tells about one node (iogrid::nodes()), built from the scheduler's
// node record by both runtimes; the SDK turns it into its public NodeInfo.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scheduler/resources.hpp"

namespace iogrid::runtime {

struct GpuSummary {
  std::string model;
  double memory_gib = 0;
  double compute_capability = 0;
  double tflops = 0;
};

struct NodeSummary {
  std::string name;
  double num_cpus = 0;
  double available_cpus = 0;
  double memory_gib = 0;
  std::vector<GpuSummary> gpus;  // one entry per device
  std::map<std::string, std::string> labels;
  std::int64_t object_store_used_bytes = 0;
  std::int64_t object_store_capacity_bytes = 0;
  std::int64_t spilled_bytes = 0;
};

inline NodeSummary summarize(const sched::Node& n) {
  NodeSummary i;
  i.name = n.name;
  i.num_cpus = sched::from_milli(n.total.cpus);
  i.available_cpus = sched::from_milli(n.available.cpus);
  i.memory_gib = double(n.total.memory_mib) / 1024.0;
  for (const auto& g : n.gpus) i.gpus.push_back(GpuSummary{g.model, double(g.memory_mib) / 1024.0, g.compute_capability, g.tflops});
  i.labels = n.labels;
  return i;
}

}  // namespace iogrid::runtime
