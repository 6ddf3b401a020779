// The SDK's view of a node (iogrid::nodes()) built from the scheduler's node record; both runtimes use it.
#pragma once

#include "iogrid/runtime.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::runtime {

inline NodeInfo describe_node(const sched::Node& n) {
  NodeInfo i;
  i.name = n.name;
  i.num_cpus = sched::from_milli(n.total.cpus);
  i.available_cpus = sched::from_milli(n.available.cpus);
  i.memory_gib = double(n.total.memory_mib) / 1024.0;
  for (const auto& g : n.gpus) {
    GpuOptions go;
    go.model = g.model;
    go.memory_gib = double(g.memory_mib) / 1024.0;
    go.compute_capability = g.compute_capability;
    go.tflops = g.tflops;
    go.count = 1;
    i.gpus.push_back(go);
  }
  i.labels = n.labels;
  return i;
}

}  // namespace iogrid::runtime
