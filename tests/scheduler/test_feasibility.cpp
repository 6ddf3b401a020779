#include <catch2/catch.hpp>

#include "scheduler/cluster_state.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/policy.hpp"

using namespace iogrid::sched;

namespace {
Node gpu_node(std::uint32_t idx, const std::string& name, int cpus, int ngpu, const std::string& model, int gib) {
  Node n;
  n.index = idx;
  n.name = name;
  n.total.cpus = cpus * kOne;
  n.total.memory_mib = 64 * 1024;
  for (int i = 0; i < ngpu; ++i) n.gpus.push_back(Gpu{model, gib * 1024, 8.0, 0, true, kOne});
  n.available = n.total;
  return n;
}
}  // namespace

TEST_CASE("fractional GPUs share one device and never over-commit it", "[scheduler]") {
  auto n = gpu_node(0, "a", 16, 2, "A100", 40);
  ResourceRequest r;
  r.cpus = 0;
  r.gpus = 300;  // 0.3 GPU
  std::vector<Allocation> allocs;
  while (auto a = allocate(n, r)) allocs.push_back(*a);
  // 3 per device (0.9), 2 devices: 6 placements, never a 4th on one device.
  REQUIRE(allocs.size() == 6);
  for (const auto& g : n.gpus) REQUIRE(g.free == 100);
  // Fractions pack onto the fuller device first.
  REQUIRE(allocs[0].gpus[0].first == allocs[1].gpus[0].first);
  for (const auto& a : allocs) release(n, a);
  for (const auto& g : n.gpus) REQUIRE(g.free == kOne);
  REQUIRE(n.available.cpus == n.total.cpus);
}

TEST_CASE("whole GPU requests need fully free matching devices", "[scheduler]") {
  auto n = gpu_node(0, "a", 16, 2, "A100", 40);
  ResourceRequest half;
  half.cpus = 0;
  half.gpus = 500;
  ResourceRequest two;
  two.cpus = 0;
  two.gpus = 2000;
  auto a = allocate(n, half);
  REQUIRE(a);
  REQUIRE_FALSE(fits(n, two, Capacity::available));
  REQUIRE(fits(n, two, Capacity::total));
  release(n, *a);
  REQUIRE(fits(n, two, Capacity::available));
}

TEST_CASE("model, memory, compute capability, labels and node affinity are hard constraints", "[scheduler]") {
  auto n = gpu_node(0, "gpu-eu", 8, 1, "RTX4090", 24);
  n.labels["region"] = "eu";
  ResourceRequest r;
  r.gpus = kOne;
  r.gpu_models = split_models("A100|H100");
  REQUIRE_FALSE(fits(n, r, Capacity::total));
  r.gpu_models = split_models("RTX4090 | A100");
  REQUIRE(fits(n, r, Capacity::total));
  r.min_gpu_memory_mib = 40 * 1024;
  REQUIRE_FALSE(fits(n, r, Capacity::total));
  r.min_gpu_memory_mib = 0;
  r.min_compute_capability = 9.0;
  REQUIRE_FALSE(fits(n, r, Capacity::total));
  r.min_compute_capability = 8.0;
  r.labels["region"] = "us";
  REQUIRE_FALSE(fits(n, r, Capacity::total));
  r.labels["region"] = "eu";
  REQUIRE(fits(n, r, Capacity::total));
  r.node = "other";
  REQUIRE_FALSE(fits(n, r, Capacity::total));
  r.node = "gpu-eu";
  REQUIRE(fits(n, r, Capacity::total));
  n.alive = false;
  REQUIRE_FALSE(fits(n, r, Capacity::total));
}

TEST_CASE("an infeasible request is explained with the request and the closest node", "[scheduler]") {
  ClusterView v;
  v.nodes.push_back(gpu_node(0, "cpu-only", 32, 0, "", 0));
  v.nodes.push_back(gpu_node(1, "small-gpu", 8, 2, "A100", 40));
  ResourceRequest r;
  r.cpus = 4 * kOne;
  r.gpus = kOne;
  r.gpu_models = {"A100"};
  r.min_gpu_memory_mib = 80 * 1024;
  auto msg = explain_infeasible(v, r);
  INFO(msg);
  REQUIRE(msg.find("no node can ever satisfy {CPU 4, GPU 1 x A100 >= 80 GiB}") != std::string::npos);
  REQUIRE(msg.find("closest node 'small-gpu'") != std::string::npos);
  REQUIRE(msg.find("40 GiB, the request needs 80 GiB") != std::string::npos);
}

TEST_CASE("request keys identify scheduling classes", "[scheduler]") {
  ResourceRequest a, b;
  REQUIRE(a.key() == b.key());
  b.gpus = 500;
  REQUIRE(a.key() != b.key());
  b = a;
  b.labels["region"] = "eu";
  REQUIRE(a.key() != b.key());
}

TEST_CASE("reserve takes back exactly an allocation that still fits, and nothing otherwise", "[scheduler]") {
  auto n = gpu_node(0, "a", 4, 1, "A100", 40);
  ResourceRequest r;
  r.cpus = 2 * kOne;
  r.gpus = 500;
  auto a = allocate(n, r);
  REQUIRE(a);
  auto fresh = gpu_node(0, "a", 4, 1, "A100", 40);
  REQUIRE(reserve(fresh, *a));
  CHECK(fresh.available.cpus == n.available.cpus);
  CHECK(fresh.gpus[0].free == n.gpus[0].free);
  // A second and third copy: the CPUs hold two, the GPU fraction holds two.
  REQUIRE(reserve(fresh, *a));
  auto before = fresh.available.cpus;
  CHECK_FALSE(reserve(fresh, *a));
  CHECK(fresh.available.cpus == before);
  release(fresh, *a);
  release(fresh, *a);
  CHECK(fresh.available.cpus == 4 * kOne);
  CHECK(fresh.gpus[0].free == kOne);
}

TEST_CASE("a request that avoids nodes (a spot check's re-run) never lands on them, on every placement path", "[scheduler][spot_check]") {
  ClusterView v;
  for (std::uint32_t i = 0; i < 3; ++i) v.nodes.push_back(gpu_node(i, "n" + std::to_string(i), 4, 1, "A100", 40));
  ClusterState state(v);
  ResourceRequest r;
  r.cpus = kOne;
  r.gpus = kOne;
  REQUIRE(state.best_fit(r).has_value());
  r.avoid_nodes = {"n0", "n1"};
  CHECK(fits(v.nodes[2], r, Capacity::total));
  CHECK_FALSE(fits(v.nodes[0], r, Capacity::total));
  CHECK(first_unmet(v.nodes[1], r).find("avoids it") != std::string::npos);
  CHECK(state.feasible(r));
  REQUIRE(state.best_fit(r).has_value());
  CHECK(*state.best_fit(r) == 2u);
  for (const std::string name : {"pack", "exhaustive-best-fit", "spread", "random", "first-fit", "dot-product", "fgd",
                                 "fgd-exhaustive", "market"}) {
    INFO(name);
    auto policy = make_policy(name);
    const auto pick = policy->select(state, r);
    REQUIRE(pick.has_value());
    CHECK(*pick == 2u);
  }
  r.avoid_nodes = {"n0", "n1", "n2"};
  CHECK_FALSE(state.feasible(r));
  CHECK_FALSE(state.best_fit(r).has_value());
  // A different avoid list is a different scheduling class.
  ResourceRequest plain = r;
  plain.avoid_nodes.clear();
  CHECK(plain.key() != r.key());
  CHECK(r.describe().find("not on n0,n1,n2") != std::string::npos);
}
