// Spot checks on the embedded cluster: a sampled share of a deterministic task's runs is run again on another
// provider; a provider outvoted by two others loses reputation and the user gets the agreed result.
#include <catch2/catch.hpp>

#include <cmath>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cluster_fixture.hpp"
#include "scheduler/spot_check.hpp"

namespace {
// Whether a provider that cheats on `per_mille` of the work skips this task (a fixed choice per argument, as a
// provider that skips work would make it).
bool skipped(std::int64_t x, int per_mille) { return iogrid::sched::splitmix64(std::uint64_t(x) * 7919) % 1000 < std::uint64_t(per_mille); }

std::int64_t right_answer(std::int64_t x) { return x * x + 7; }

// Honest everywhere but on 'cheater' (wrong on its share of tasks) and 'sneaky' (wrong on its share, but only the
// first time it sees a task: what it takes for a re-check it answers honestly).
std::int64_t spot_work(std::int64_t x, int per_mille) {
  const auto node = iogrid::current_node();
  if (node == "cheater" && skipped(x, per_mille)) return right_answer(x) + 1;
  if (node == "sneaky") {
    static std::mutex m;
    static std::set<std::int64_t> seen;
    bool first;
    {
      std::lock_guard<std::mutex> g(m);
      first = seen.insert(x).second;
    }
    if (first && skipped(x, per_mille)) return right_answer(x) - 1;
  }
  return right_answer(x);
}
IOGRID_REMOTE(spot_work);

std::string spot_where(int) { return iogrid::current_node(); }
IOGRID_REMOTE(spot_where);

// A little floating-point noise that differs from node to node (another GPU model, another summation order).
double spot_noisy(int x) { return x * 1.5 * (1 + 1e-13 * double(iogrid::current_node().size() + iogrid::current_node().back())); }
IOGRID_REMOTE(spot_noisy);
std::vector<float> spot_noisy_vector(int x) {
  const float eps = iogrid::current_node() == "n1" ? 0 : iogrid::current_node() == "n2" ? 1e-7f : -1e-7f;
  return {float(x) * (1 + eps), 2.0f, float(x) / 3 * (1 - eps)};
}
IOGRID_REMOTE(spot_noisy_vector);

// A result that holds a ref: its id differs run to run, so it cannot be compared (it stands unchecked).
std::vector<iogrid::ObjectRef<int>> spot_refs(int x) { return {iogrid::put(x)}; }
IOGRID_REMOTE(spot_refs);

iogrid::InitOptions providers(std::vector<std::string> names, double default_fraction = -1) {
  iogrid::InitOptions o;
  for (auto& n : names) o.nodes.push_back({.name = std::move(n), .num_cpus = 2});
  o.verify_fraction = default_fraction;
  o.verify_seed = 20261202;
  return o;
}

// A 99.99% band of a binomial count.
bool within_binomial(double count, double n, double p) {
  const double sd = std::sqrt(n * p * (1 - p));
  return std::abs(count - n * p) <= 4 * sd + 1;
}
}  // namespace

TEST_CASE("spot checks: a provider outvoted by two others is caught, the user gets the agreed result, and its reputation falls",
          "[sdk][spot_check]") {
  Cluster c(providers({"honest-1", "honest-2", "cheater"}));
  std::vector<iogrid::ObjectRef<std::int64_t>> refs;
  for (int i = 0; i < 100; ++i)
    refs.push_back(iogrid::task(spot_work).options({.node = "cheater", .verify_fraction = 1}).remote(i, 1000));
  for (int i = 0; i < 100; ++i) CHECK(iogrid::get(refs[i]) == right_answer(i));
  const auto s = iogrid::spot_checks();
  CHECK(s.draws == 100);
  CHECK(s.settled == 100);
  CHECK(s.agreed == 0);
  CHECK(s.extra_runs == 200);
  // Without checks, the same provider's wrong answers reach the user.
  CHECK(iogrid::get(iogrid::task(spot_work).options({.node = "cheater", .verify_fraction = 0}).remote(3, 1000)) == right_answer(3) + 1);
  // Caught: its reputation is at most 0.1 (scheduler/reputation.hpp), so spot_work asking for 0.5 no longer goes there.
  REQUIRE_THROWS_WITH(iogrid::get(iogrid::task(spot_work).options({.node = "cheater", .min_reputation = 0.5}).remote(1, 0)),
                      Catch::Contains("reputation"));
  CHECK(iogrid::get(iogrid::task(spot_work).options({.node = "honest-1", .min_reputation = 0.9}).remote(1, 0)) == right_answer(1));
}

TEST_CASE("spot checks catch a cheater and a sneaky cheater at the rate the rule predicts for the sampled share",
          "[sdk][spot_check]") {
  const int per_mille = 100;    // wrong on 10% of its tasks
  const double fraction = 0.2;  // 20% of runs checked
  const int n = 3000;
  int wrong = 0;
  for (int i = 0; i < n; ++i) wrong += skipped(i, per_mille) ? 1 : 0;
  REQUIRE(wrong > 200);
  for (const std::string who : {"cheater", "sneaky"}) {
    INFO(who);
    Cluster c(providers({"honest-1", "honest-2", who}));
    std::vector<iogrid::ObjectRef<std::int64_t>> refs;
    for (int i = 0; i < n; ++i) refs.push_back(iogrid::task(spot_work).options({.node = who, .verify_fraction = fraction}).remote(i, per_mille));
    int delivered_wrong = 0;
    for (int i = 0; i < n; ++i) delivered_wrong += iogrid::get(refs[i]) != right_answer(i) ? 1 : 0;
    const auto s = iogrid::spot_checks();
    CHECK(s.draws == std::uint64_t(n));
    CHECK(s.unchecked == 0);
    CHECK(s.unsettled == 0);
    // Every wrong result that was checked was caught and replaced; the others reached the user.
    CHECK(delivered_wrong == wrong - int(s.settled));
    CHECK(within_binomial(double(s.settled), wrong, fraction));
    CHECK(within_binomial(double(s.settled + s.agreed), n, fraction));
    // The overhead is the share checked plus a third run per mismatch.
    CHECK(s.extra_runs == 2 * s.settled + s.agreed);
  }
  // The rule's prediction for the setting: 2% wrong, 5% checked, within 5,000 tasks.
  CHECK(iogrid::sched::predicted_catch_probability(0.02, 0.05, 5000) == Approx(1 - std::pow(1 - 0.001, 5000)));
  CHECK(iogrid::sched::predicted_catch_probability(0.02, 0.05, 5000) > 0.99);
}

TEST_CASE("spot checks: three different results fail the task, and a stated tolerance lets floating-point noise agree",
          "[sdk][spot_check]") {
  Cluster c(providers({"n1", "n2", "n3"}));
  try {
    iogrid::get(iogrid::task(spot_where).options({.verify_fraction = 1}).remote(1));
    FAIL("three different results must fail the task");
  } catch (const iogrid::TaskError& e) {
    CHECK(std::string(e.what()).find("three different results") != std::string::npos);
    CHECK(std::string(e.what()).find("deterministic") != std::string::npos);
  }
  CHECK(iogrid::spot_checks().unsettled == 1);
  // Bitwise, the noise makes three different results; within 1e-9 they agree.
  CHECK_THROWS_AS(iogrid::get(iogrid::task(spot_noisy).options({.verify_fraction = 1}).remote(3)), iogrid::TaskError);
  CHECK(iogrid::get(iogrid::task(spot_noisy).options({.verify_fraction = 1, .verify_tolerance = 1e-9}).remote(3)) == Approx(4.5));
  const auto v = iogrid::get(iogrid::task(spot_noisy_vector).options({.verify_fraction = 1, .verify_tolerance = 1e-5}).remote(6));
  REQUIRE(v.size() == 3);
  CHECK(v[1] == 2.0f);
  const auto s = iogrid::spot_checks();
  CHECK(s.unsettled == 2);
  CHECK(s.agreed == 2);
}

TEST_CASE("spot checks: with no other provider the result stands unchecked, and the process default applies",
          "[sdk][spot_check]") {
  {
    Cluster c(providers({"only"}, 1.0));
    std::vector<iogrid::ObjectRef<std::int64_t>> refs;
    for (int i = 0; i < 20; ++i) refs.push_back(iogrid::task(spot_work).remote(i, 0));  // the default: every run checked
    for (int i = 0; i < 20; ++i) CHECK(iogrid::get(refs[i]) == right_answer(i));
    const auto s = iogrid::spot_checks();
    CHECK(s.draws == 20);
    CHECK(s.unchecked == 20);
    CHECK(s.extra_runs == 0);
    // A task can opt out of the default.
    CHECK(iogrid::get(iogrid::task(spot_work).options({.verify_fraction = 0}).remote(2, 0)) == right_answer(2));
    CHECK(iogrid::spot_checks().draws == 20);
  }
  {
    Cluster c(providers({"a", "b"}));
    auto refs = iogrid::get(iogrid::task(spot_refs).options({.verify_fraction = 1}).remote(7));
    REQUIRE(refs.size() == 1);
    CHECK(iogrid::get(refs[0]) == 7);
    CHECK(iogrid::spot_checks().unchecked == 1);
    CHECK_THROWS_WITH(iogrid::task(spot_work).options({.verify_fraction = 1.5}).remote(1, 0), Catch::Contains("verify_fraction"));
    CHECK_THROWS_WITH(iogrid::task(spot_work).options({.verify_fraction = -0.5}).remote(1, 0), Catch::Contains("verify_fraction"));
    CHECK_THROWS_WITH(iogrid::task(spot_work).options({.verify_tolerance = -1}).remote(1, 0), Catch::Contains("verify_tolerance"));
  }
}
