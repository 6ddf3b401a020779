// A laptop emulating a mixed GPU cluster: nodes with different GPU models, memory and regions.
// Each task asks for what it needs; the program prints where it ran and why.
#include <iogrid/iogrid.hpp>

#include <iostream>

std::string where() { return iogrid::current_node(); }
IOGRID_REMOTE(where);

int main() {
  iogrid::InitOptions o;
  o.nodes.push_back({.name = "cpu-box", .num_cpus = 4});
  o.nodes.push_back({.name = "dc-h100", .num_cpus = 8,
                     .gpus = {{.model = "H100", .memory_gib = 80, .compute_capability = 9.0, .count = 2}},
                     .labels = {{"region", "eu"}, {"provider", "dc"}}});
  o.nodes.push_back({.name = "rig-4090", .num_cpus = 4,
                     .gpus = {{.model = "RTX4090", .memory_gib = 24, .compute_capability = 8.9, .count = 4}},
                     .labels = {{"region", "us"}, {"provider", "home"}}});
  iogrid::init(o);

  struct Job {
    const char* why;
    iogrid::TaskOptions opts;
    const char* expect;
  };
  std::vector<Job> jobs = {
      {"CPU only, node pinned", {.node = "cpu-box"}, "cpu-box"},
      {"needs 80 GiB of GPU memory", {.num_gpus = 1, .min_gpu_memory_gib = 60}, "dc-h100"},
      {"needs compute capability 9.0 (Hopper)", {.num_gpus = 1, .min_compute_capability = 9.0}, "dc-h100"},
      {"accepts RTX4090 only", {.num_gpus = 1, .gpu_model = "RTX4090"}, "rig-4090"},
      {"a quarter GPU in region us", {.num_gpus = 0.25, .labels = {{"region", "us"}}}, "rig-4090"},
      {"3 whole GPUs on one node", {.num_gpus = 3}, "rig-4090"},
  };
  bool ok = true;
  for (auto& j : jobs) {
    auto node = iogrid::get(iogrid::task(where).options(j.opts).remote());
    std::cout << "  " << j.why << " -> ran on " << node << "\n";
    ok = ok && node == j.expect;
  }
  try {
    iogrid::get(iogrid::task(where).options({.num_gpus = 1, .gpu_model = "A100"}).remote());
    ok = false;
  } catch (const iogrid::InfeasibleError& e) {
    std::cout << "  an A100 request -> " << e.what() << "\n";
  }
  iogrid::shutdown();
  std::cout << (ok ? "OK: every task ran where its request allows" : "WRONG placement") << "\n";
  return ok ? 0 : 1;
}
