// An embedded cluster for one test: started in the constructor, shut down in the destructor.
#pragma once

#include <iogrid/iogrid.hpp>

struct Cluster {
  explicit Cluster(iogrid::InitOptions o = {}) { iogrid::init(std::move(o)); }
  ~Cluster() { iogrid::shutdown(); }
};

// Three heterogeneous virtual nodes: a CPU node, an A100 node in eu, an RTX4090 node in us.
inline iogrid::InitOptions mixed_cluster() {
  iogrid::InitOptions o;
  o.nodes.push_back({.name = "cpu", .num_cpus = 2});
  o.nodes.push_back({.name = "a100-eu",
                     .num_cpus = 2,
                     .gpus = {{.model = "A100", .memory_gib = 80, .compute_capability = 8.0, .count = 2}},
                     .labels = {{"region", "eu"}}});
  o.nodes.push_back({.name = "4090-us",
                     .num_cpus = 2,
                     .gpus = {{.model = "RTX4090", .memory_gib = 24, .compute_capability = 8.9, .count = 1}},
                     .labels = {{"region", "us"}}});
  return o;
}
