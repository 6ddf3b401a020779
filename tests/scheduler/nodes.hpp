// Hand-built nodes for the scheduler tests.
#pragma once

#include <string>

#include "scheduler/resources.hpp"

namespace iogrid::sched::test {

// An idle node with `cpus` CPUs, 64 GiB, `gpus` verified 40 GiB A100s (300 TFLOPS) and an optional region.
inline Node make_node(const std::string& name, int cpus, int gpus = 0, const std::string& region = "") {
  Node n;
  n.name = name;
  n.total.cpus = cpus * kOne;
  n.total.memory_mib = 64 * 1024;
  n.gpus.assign(static_cast<std::size_t>(gpus), Gpu{"A100", 40960, 8.0, 300, true, kOne});
  n.available = n.total;
  if (!region.empty()) n.labels[kRegionLabel] = region;
  return n;
}

}  // namespace iogrid::sched::test
