#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "nodes.hpp"
#include "scheduler/placement_group.hpp"

using namespace iogrid::sched;

namespace {

Node gpu_node(const std::string& name, int gpus, int cpus, const std::string& region = "") {
  return test::make_node(name, cpus, gpus, region);
}

ResourceRequest bundle(Milli gpus, Milli cpus = kOne) {
  ResourceRequest r;
  r.cpus = cpus;
  r.gpus = gpus;
  return r;
}

GangRequest gang(std::size_t n, Milli gpus, GangStrategy s, bool same_region = false) {
  GangRequest g;
  g.bundles.assign(n, bundle(gpus));
  g.strategy = s;
  g.same_region = same_region;
  return g;
}

// What a state looks like, to check that a failed placement changed nothing.
std::vector<Milli> snapshot(const ClusterState& s) {
  std::vector<Milli> out;
  for (const auto& n : s.nodes()) {
    out.push_back(n.available.cpus);
    out.push_back(n.available.memory_mib);
    for (const auto& g : n.gpus) out.push_back(g.free);
  }
  return out;
}

std::set<std::uint32_t> nodes_of(const GangPlacement& p) {
  std::set<std::uint32_t> s;
  for (const auto& a : p.bundles) s.insert(a.node);
  return s;
}

}  // namespace

TEST_CASE("strict-pack puts every bundle on one node, or nothing", "[scheduler][gang]") {
  ClusterState s;
  s.add(gpu_node("a", 4, 16));
  s.add(gpu_node("b", 8, 32));
  auto p = place_gang(s, gang(6, kOne, GangStrategy::strict_pack));
  REQUIRE(p);
  CHECK(nodes_of(*p) == std::set<std::uint32_t>{1});
  auto before = snapshot(s);
  CHECK_FALSE(place_gang(s, gang(5, kOne, GangStrategy::strict_pack)));  // 4 + 2 free, never 5 on one node
  CHECK(snapshot(s) == before);
  release_gang(s, *p);
  for (const auto& g : s.node(1).gpus) CHECK(g.free == kOne);
}

TEST_CASE("strict-spread needs as many nodes as bundles and says so", "[scheduler][gang]") {
  ClusterState s;
  for (int i = 0; i < 3; ++i) s.add(gpu_node("n" + std::to_string(i), 2, 8));
  auto p = place_gang(s, gang(3, kOne, GangStrategy::strict_spread));
  REQUIRE(p);
  CHECK(nodes_of(*p).size() == 3);
  auto before = snapshot(s);
  auto four = gang(4, kOne, GangStrategy::strict_spread);
  CHECK_FALSE(place_gang(s, four));
  CHECK(snapshot(s) == before);
  std::string why;
  CHECK_FALSE(gang_feasible(s, four, &why));
  CHECK_THAT(why, Catch::Contains("needs 4 different nodes, 3 can hold a bundle"));
}

TEST_CASE("pack uses one node when it can, few nodes otherwise, spread prefers distinct nodes", "[scheduler][gang]") {
  ClusterState s;
  for (int i = 0; i < 4; ++i) s.add(gpu_node("n" + std::to_string(i), 4, 16));
  auto one = place_gang(s, gang(4, kOne, GangStrategy::pack));
  REQUIRE(one);
  CHECK(nodes_of(*one).size() == 1);
  auto two = place_gang(s, gang(6, kOne, GangStrategy::pack));  // 3 idle 4-GPU nodes: two of them
  REQUIRE(two);
  CHECK(nodes_of(*two).size() == 2);
  release_gang(s, *one);
  release_gang(s, *two);
  auto spread = place_gang(s, gang(6, kOne, GangStrategy::spread));  // 4 nodes for 6 bundles: all 4 used
  REQUIRE(spread);
  CHECK(nodes_of(*spread).size() == 4);
}

TEST_CASE("same-region gangs stay in one region, preferred regions first", "[scheduler][gang]") {
  ClusterState s;
  s.add(gpu_node("eu-1", 2, 8, "eu"));
  s.add(gpu_node("eu-2", 2, 8, "eu"));
  s.add(gpu_node("us-1", 4, 16, "us"));
  s.add(gpu_node("us-2", 2, 8, "us"));
  auto g = gang(4, kOne, GangStrategy::spread, true);
  g.bundles[0].preferred_regions = {"eu"};
  auto p = place_gang(s, g);
  REQUIRE(p);
  CHECK(p->region == "eu");
  for (const auto& a : p->bundles) CHECK(s.node(a.node).region() == "eu");
  // 5 GPUs: eu has none left, us has 6: all five in us, never split across regions.
  auto q = place_gang(s, gang(5, kOne, GangStrategy::pack, true));
  REQUIRE(q);
  CHECK(q->region == "us");
  release_gang(s, *q);
  // 7 GPUs fit nowhere in one region (us has 6) although the cluster has 10: refused, nothing taken.
  auto before = snapshot(s);
  CHECK_FALSE(place_gang(s, gang(7, kOne, GangStrategy::pack, true)));
  CHECK(snapshot(s) == before);
  CHECK(place_gang(s, gang(6, kOne, GangStrategy::pack, false)));  // without the constraint it does
}

TEST_CASE("gangs are all or nothing under contention and never over-commit", "[scheduler][gang]") {
  ClusterState s;
  for (int i = 0; i < 12; ++i) s.add(gpu_node("n" + std::to_string(i), 1 + i % 4, 8 + 4 * (i % 3), i % 2 ? "eu" : "us"));
  std::mt19937_64 rng(11);
  std::vector<GangPlacement> live;
  int placed = 0, refused = 0;
  for (int round = 0; round < 2000; ++round) {
    if (!live.empty() && rng() % 3 == 0) {
      auto k = rng() % live.size();
      release_gang(s, live[k]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    const GangStrategy strategies[] = {GangStrategy::pack, GangStrategy::spread, GangStrategy::strict_pack,
                                       GangStrategy::strict_spread};
    const Milli sizes[] = {250, 500, kOne, 2 * kOne};
    auto g = gang(1 + rng() % 5, sizes[rng() % 4], strategies[rng() % 4], rng() % 2 == 0);
    auto before = snapshot(s);
    auto p = place_gang(s, g);
    if (!p) {
      ++refused;
      REQUIRE(snapshot(s) == before);
      continue;
    }
    ++placed;
    REQUIRE(p->bundles.size() == g.bundles.size());
    if (g.strategy == GangStrategy::strict_pack) REQUIRE(nodes_of(*p).size() == 1);
    if (g.strategy == GangStrategy::strict_spread) REQUIRE(nodes_of(*p).size() == g.bundles.size());
    if (g.same_region)
      for (const auto& a : p->bundles) REQUIRE(s.node(a.node).region() == p->region);
    live.push_back(*p);
    for (const auto& n : s.nodes()) {
      REQUIRE(n.available.cpus >= 0);
      for (const auto& d : n.gpus) REQUIRE((d.free >= 0 && d.free <= kOne));
    }
  }
  CHECK(placed > 100);
  CHECK(refused > 100);
  for (const auto& p : live) release_gang(s, p);
  for (const auto& n : s.nodes()) {
    CHECK(n.available.cpus == n.total.cpus);
    for (const auto& d : n.gpus) CHECK(d.free == kOne);
  }
}

TEST_CASE("work targeting a bundle draws on its reservation, on the node's devices", "[scheduler][gang]") {
  ClusterState s;
  s.add(gpu_node("a", 4, 16));
  auto taken = s.allocate(0, bundle(2 * kOne));  // devices 0 and 1 busy
  REQUIRE(taken);
  auto p = place_gang(s, gang(1, 2 * kOne, GangStrategy::pack));
  REQUIRE(p);
  BundlePool pool(p->bundles[0], s.node(0));
  auto t1 = pool.allocate(bundle(kOne, 0));
  auto t2 = pool.allocate(bundle(500, 0));
  auto t3 = pool.allocate(bundle(500, 0));
  REQUIRE(t1);
  REQUIRE(t2);
  REQUIRE(t3);
  CHECK(t1->gpus[0].first >= 2);  // a device of the reservation, not a busy one
  CHECK(t2->gpus[0].first == t3->gpus[0].first);  // two halves share the remaining device
  CHECK_FALSE(pool.allocate(bundle(100, 0)));      // the bundle is full; the node's free capacity is not touched
  CHECK_FALSE(pool.fits_ever(bundle(3 * kOne, 0)));
  pool.release(*t2);
  CHECK(pool.allocate(bundle(400, 0)));
}
