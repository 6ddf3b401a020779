#include <catch2/catch.hpp>
#include <random>

#include "nodes.hpp"
#include "scheduler/cluster_state.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/ledger.hpp"
#include "scheduler/market_policy.hpp"
#include "scheduler/reputation.hpp"
#include "scheduler/spot_check.hpp"
#include "scheduler/policy.hpp"

using namespace iogrid::sched;

namespace {
Node priced(const std::string& name, double price, double reputation, const std::string& region = "eu") {
  Node n = test::make_node(name, 16, 2, region);
  n.price_per_gpu_hour = price;
  n.reputation = reputation;
  return n;
}
ResourceRequest one_gpu() {
  ResourceRequest r;
  r.gpus = kOne;
  return r;
}
}  // namespace

TEST_CASE("a price ceiling and a reputation floor are hard limits for every policy", "[scheduler][market]") {
  ClusterState s;
  s.add(priced("cheap-shady", 0.5, 0.3));
  s.add(priced("dear-trusted", 3.0, 0.95));
  s.add(priced("mid", 1.5, 0.8));
  auto r = one_gpu();
  r.max_price = 2.0;
  r.min_reputation = 0.5;
  for (const char* name : {"pack", "spread", "random", "first-fit", "dot-product", "fgd", "market"}) {
    auto p = make_policy(name, 3);
    for (int i = 0; i < 5; ++i) {
      auto n = p->select(s, r);
      REQUIRE(n);
      CHECK(s.node(*n).name == "mid");
    }
  }
  r.max_price = 1.0;  // only the shady node is cheap enough
  CHECK_FALSE(make_policy("market")->select(s, r));
  CHECK_FALSE(s.feasible(r));
  auto why = explain_infeasible(s.view(), r);
  CHECK_THAT(why, Catch::Contains("price") || Catch::Contains("reputation"));
}

TEST_CASE("the market policy trades price, reputation and region by its weights", "[scheduler][market]") {
  ClusterState s;
  s.add(priced("a", 2.0, 0.9, "us"));
  s.add(priced("b", 1.0, 0.9, "us"));  // half the price, same trust: wins
  MarketPolicy m;
  CHECK(m.select(s, one_gpu()) == 1u);
  // Equal prices: the more reputable node wins.
  ClusterState t;
  t.add(priced("a", 1.0, 0.6));
  t.add(priced("b", 1.0, 1.0));
  CHECK(m.select(t, one_gpu()) == 1u);
  // A preferred region outweighs a small price difference (region 0.5 > price 1 x 10%).
  ClusterState u;
  u.add(priced("eu", 1.1, 0.9, "eu"));
  u.add(priced("us", 1.0, 0.9, "us"));
  auto r = one_gpu();
  CHECK(m.select(u, r) == 1u);
  r.preferred_regions = {"eu"};
  CHECK(m.select(u, r) == 0u);
  // With the price weight at zero the cheaper node has no advantage: ties go to the lowest index.
  MarketPolicy fit_only(MarketWeights{1.0, 0.0, 0.0, 0.0});
  CHECK(fit_only.select(s, one_gpu()) == 0u);
}

TEST_CASE("unverified GPUs get no GPU work unless allowed, minimum verified throughput", "[scheduler][market]") {
  ClusterState s;
  auto unverified = priced("new", 0.5, 1.0);
  for (auto& g : unverified.gpus) g.verified = false;
  s.add(unverified);
  auto slow = priced("slow", 0.5, 1.0);
  for (auto& g : slow.gpus) g.tflops = 100;
  s.add(slow);
  auto r = one_gpu();
  CHECK(make_policy("pack")->select(s, r) == 1u);
  r.min_gpu_tflops = 200;
  CHECK_FALSE(make_policy("pack")->select(s, r));
  CHECK_THAT(explain_infeasible(s.view(), r), Catch::Contains("unverified") || Catch::Contains("TFLOPS"));
  r.allow_unverified = true;
  r.min_gpu_tflops = 0;
  CHECK(make_policy("first-fit")->select(s, r) == 0u);
  ResourceRequest cpu_only;  // CPU work may use a node whose GPUs are unverified
  CHECK(make_policy("first-fit")->select(s, cpu_only) == 0u);
}

TEST_CASE("fractional GPUs are never over-committed, whatever the policy", "[scheduler][policy]") {
  for (const char* name : {"pack", "spread", "random", "first-fit", "dot-product", "fgd", "market"}) {
    ClusterState s;
    for (int i = 0; i < 6; ++i) s.add(priced("n" + std::to_string(i), 1.0 + i, 0.9));
    auto p = make_policy(name, 5);
    std::mt19937_64 rng(9);
    std::vector<Allocation> live;
    const Milli shapes[] = {100, 250, 300, 500, 700, kOne, 2 * kOne};
    for (int k = 0; k < 3000; ++k) {
      if (!live.empty() && rng() % 3 == 0) {
        auto j = rng() % live.size();
        s.release(live[j]);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(j));
        continue;
      }
      ResourceRequest r;
      r.cpus = 100;
      r.gpus = shapes[rng() % 7];
      auto n = p->select(s, r);
      if (!n) continue;
      auto a = s.allocate(*n, r);
      REQUIRE(a);
      live.push_back(*a);
      for (const auto& d : s.node(*n).gpus) REQUIRE((d.free >= 0 && d.free <= kOne));
    }
    // Every device's free fraction equals one minus what the live allocations hold on it.
    std::map<std::pair<std::uint32_t, std::uint32_t>, Milli> held;
    for (const auto& a : live)
      for (const auto& [d, f] : a.gpus) held[{a.node, d}] += f;
    for (const auto& n : s.nodes())
      for (std::uint32_t d = 0; d < n.gpus.size(); ++d) CHECK(n.gpus[d].free == kOne - held[{n.index, d}]);
  }
}

TEST_CASE("reputation follows the documented rule", "[scheduler][market]") {
  // At 0.9 one lost lease costs what ~190 successes rebuild; a failed verification caps trust at once.
  double r = 0.9;
  r = update_reputation(r, Outcome::task_failed);
  CHECK(r == Approx(0.855));
  int successes = 0;
  while (r < 0.9 && successes < 1000) r = update_reputation(r, Outcome::task_succeeded), ++successes;
  CHECK(successes > 150);
  CHECK(successes < 250);
  CHECK(update_reputation(0.95, Outcome::verification_failed) == Approx(0.1));
  CHECK(update_reputation(0.5, Outcome::verification_passed) == Approx(0.65));
  CHECK(update_reputation(0.5, Outcome::node_died) == Approx(0.45));
  CHECK(update_reputation(1.0, Outcome::uptime_hour) == 1.0);
  CHECK(update_reputation(0.0, Outcome::task_failed) == 0.0);
}

TEST_CASE("the ledger charges leases, reservations and providers by their rules", "[scheduler][market]") {
  Ledger l;
  l.lease("job-1", "", "n1", 2, 1800, 3.0);        // 2 GPUs for half an hour at 3/GPU-h
  l.lease("job-2", "c-4", "n2", 1, 3600, 1.0);     // inside a reservation: no extra cost
  l.reserved("c-4", "n2", 4, 3600, 1.0);           // the reservation pays for its 4 GPUs
  l.lease("job-1", "", "n1", 0, 100, 3.0);         // CPU-only: nothing
  CHECK(l.total("job", "job-1").gpu_seconds == Approx(3600));
  CHECK(l.total("job", "job-1").cost == Approx(3.0));
  CHECK(l.total("job", "job-2").gpu_seconds == Approx(3600));
  CHECK(l.total("job", "job-2").cost == 0);
  CHECK(l.total("reservation", "c-4").cost == Approx(4.0));
  CHECK(l.total("node", "n1").cost == Approx(3.0));
  CHECK(l.total("node", "n2").cost == Approx(4.0));
  auto again = Ledger::load(l.save());  // what the head keeps in its state survives a restart
  CHECK(again.total("node", "n2").gpu_seconds == Approx(14400));
  CHECK(again.entries().size() == l.entries().size());
  CHECK(again.entries().front().kind == "job");
  CHECK_THROWS_WITH(Ledger::load("job,x\n"), Catch::Contains("line 1"));
}

TEST_CASE("spot checks: reputation after a check, the settling rule and the catch prediction", "[scheduler][market][spot_check]") {
  // A provider outvoted loses half its trust and at most keeps 0.1; a passed check earns ten successes' worth.
  CHECK(update_reputation(0.95, Outcome::check_failed) == Approx(0.1));
  CHECK(update_reputation(0.1, Outcome::check_failed) == Approx(0.05));
  CHECK(update_reputation(0.5, Outcome::check_passed) == Approx(0.51));
  // Who stands after a mismatch between runs 0 and 1: the one the third run agrees with.
  CHECK(settle(true, false) == 0);
  CHECK(settle(false, true) == 1);
  CHECK(settle(false, false) == -1);
  CHECK(sample_check(0.05, 0.049));
  CHECK_FALSE(sample_check(0.05, 0.05));
  CHECK_FALSE(sample_check(0, 0.0));
  // 1 - (1 - w f)^n; the setting gives 0.9933.
  CHECK(predicted_catch_probability(0.02, 0.05, 5000) == Approx(0.99328).epsilon(1e-4));
  CHECK(predicted_catch_probability(0.02, 0, 5000) == 0);
  CHECK(predicted_catch_probability(1, 1, 1) == 1);
  CHECK(expected_check_overhead(0.05, 0.02) == Approx(0.051));
  // The draws are uniform: about f of them check.
  int checked = 0;
  for (std::uint64_t i = 0; i < 100000; ++i) checked += sample_check(0.05, uniform_from(splitmix64(42 + i))) ? 1 : 0;
  CHECK(checked > 4700);
  CHECK(checked < 5300);
}
