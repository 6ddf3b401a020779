// Reservations ("clusters") and the ledger through the SDK, on the embedded cluster.
#include <catch2/catch.hpp>
#include <atomic>
#include <set>
#include <thread>

#include "cluster_fixture.hpp"

namespace {
std::string gpu_where() { return iogrid::current_node(); }
IOGRID_REMOTE(gpu_where);

iogrid::InitOptions market() {
  iogrid::InitOptions o;
  auto node = [](std::string name, std::string model, int count, std::string region, double price, double rep) {
    return iogrid::NodeOptions{.name = std::move(name),
                               .num_cpus = 4,
                               .gpus = {{.model = std::move(model), .memory_gib = 40, .count = count}},
                               .labels = {{"region", std::move(region)}},
                               .price_per_gpu_hour = price,
                               .reputation = rep};
  };
  o.nodes.push_back(node("eu-a100", "A100", 2, "eu", 2.0, 0.9));
  o.nodes.push_back(node("us-a100", "A100", 2, "us", 1.0, 0.95));
  o.nodes.push_back(node("eu-t4", "T4", 2, "eu", 0.3, 0.6));
  return o;
}
}  // namespace

TEST_CASE("create_cluster reserves at once, tasks inside run only there, delete ends it", "[sdk][clusters]") {
  Cluster c(market());
  auto r = iogrid::create_cluster({.gpus = 2, .gpu_model = "A100", .max_price = 1.5, .name = "cheap"});
  REQUIRE(r.nodes.size() == 1);
  CHECK(r.nodes[0].node == "us-a100");
  CHECK(r.region == "us");
  CHECK(r.price_per_hour == Approx(2.0));
  REQUIRE(iogrid::list_clusters().size() == 1);

  std::vector<iogrid::ObjectRef<std::string>> refs;
  for (int i = 0; i < 8; ++i) refs.push_back(iogrid::task(gpu_where).options({.num_gpus = 1, .cluster = r.id}).remote());
  std::set<std::string> where;
  for (auto& x : refs) where.insert(iogrid::get(x));
  CHECK(where == std::set<std::string>{"us-a100"});
  // More than a bundle holds can never run inside it: a clear error, not a hang.
  CHECK_THROWS_WITH(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 2, .cluster = r.id}).remote()),
                    Catch::Contains("no bundle of reservation"));
  // Outside the reservation the free A100 node is used.
  CHECK(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .gpu_model = "A100"}).remote()) == "eu-a100");

  // What cannot be met says why and what comes closest.
  CHECK_THROWS_WITH(iogrid::create_cluster({.gpus = 3, .gpu_model = "A100"}), Catch::Contains("closest offer"));
  CHECK_THROWS_WITH(iogrid::create_cluster({.gpus = 1, .min_reputation = 0.99}),
                    Catch::Contains("reputation") && Catch::Contains("below the request's minimum"));
  CHECK_THROWS_WITH(iogrid::create_cluster({.gpus = 0}), Catch::Contains("whole number of GPUs"));

  // The ledger: the driver's GPU-seconds (paid by the reservation), the reservation, its node.
  bool charged = false;
  for (int i = 0; i < 200 && !charged; ++i) {  // leases end shortly after their last task
    for (const auto& e : iogrid::ledger()) charged = charged || (e.kind == "job" && e.gpu_seconds > 0);
    if (!charged) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(charged);
  iogrid::delete_cluster(r.id);
  CHECK(iogrid::list_clusters().empty());
  bool reservation_charged = false;
  for (const auto& e : iogrid::ledger())
    if (e.kind == "reservation" && e.name == r.id) reservation_charged = e.cost > 0;
  CHECK(reservation_charged);
  // New work cannot enter it (leases already granted inside run out when idle: lease_idle, 10 ms here).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK_THROWS_WITH(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .cluster = r.id}).remote()),
                    Catch::Contains("was deleted") || Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(iogrid::delete_cluster(r.id), Catch::Contains("no cluster"));
  CHECK_THROWS_WITH(iogrid::task(gpu_where).options({.cluster = "bogus"}).remote(), Catch::Contains("not a cluster id"));
}

TEST_CASE("price ceilings and reputation floors on tasks", "[sdk][clusters]") {
  Cluster c(market());
  CHECK(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .max_price = 0.5}).remote()) == "eu-t4");
  CHECK(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .min_reputation = 0.93}).remote()) == "us-a100");
  CHECK_THROWS_WITH(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .max_price = 0.1}).remote()),
                    Catch::Contains("above the request's ceiling"));
}

namespace {
std::atomic<int> g_order{0};
int hold_cpu(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return 0;
}
int take_turn() { return g_order.fetch_add(1); }
IOGRID_REMOTE(hold_cpu);
IOGRID_REMOTE(take_turn);
}  // namespace

TEST_CASE("when CPUs are short, higher priority work runs first", "[sdk][queue]") {
  iogrid::InitOptions o;
  o.nodes.push_back({.name = "one", .num_cpus = 1});
  Cluster c(o);
  g_order = 0;
  // (A lease serves further tasks of its own shape, so the busy task has a shape of its own.)
  auto busy = iogrid::task(hold_cpu).options({.priority = 1}).remote(300);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the only CPU is taken
  auto low = iogrid::task(take_turn).options({.priority = 0}).remote();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto high = iogrid::task(take_turn).options({.priority = 5}).remote();
  CHECK(iogrid::get(high) < iogrid::get(low));
  (void)iogrid::get(busy);
}

TEST_CASE("a cluster's bundles can be targeted one by one, strategies spread them", "[sdk][clusters]") {
  Cluster c(market());
  auto r = iogrid::create_cluster({.gpus = 2, .gpu_model = "A100", .any_region = true, .strategy = "strict-spread"});
  REQUIRE(r.bundles.size() == 2);
  CHECK(r.bundles[0] != r.bundles[1]);  // one GPU per node
  for (int b = 0; b < 2; ++b)
    CHECK(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .cluster = r.id, .bundle = b}).remote()) ==
          r.bundles[static_cast<std::size_t>(b)]);
  CHECK_THROWS_WITH(iogrid::get(iogrid::task(gpu_where).options({.num_gpus = 1, .cluster = r.id, .bundle = 5}).remote()),
                    Catch::Contains("there is no bundle 5"));
  CHECK_THROWS_WITH(iogrid::task(gpu_where).options({.bundle = 0}).remote(), Catch::Contains("needs a cluster"));
  CHECK_THROWS_WITH(iogrid::create_cluster({.gpus = 1, .strategy = "diagonal"}), Catch::Contains("unknown gang strategy"));
  // strict-pack: all on one node, or refused with the reason.
  CHECK_THROWS_WITH(iogrid::create_cluster({.gpus = 3, .gpu_model = "A100", .any_region = true, .strategy = "strict-pack"}),
                    Catch::Contains("strict-pack needs one node"));
}
