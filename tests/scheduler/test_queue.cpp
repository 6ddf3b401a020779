#include <catch2/catch.hpp>
#include <random>

#include "nodes.hpp"
#include "scheduler/scheduler.hpp"

using namespace iogrid::sched;
using namespace std::chrono_literals;

namespace {

struct FakeClock {
  std::chrono::steady_clock::time_point t{};
  Scheduler::Clock fn() {
    return [this] { return t; };
  }
};

using test::make_node;
Node node(const std::string& name, int cpus, int gpus = 0) { return make_node(name, cpus, gpus); }

ResourceRequest cpus(int c) {
  ResourceRequest r;
  r.cpus = c * kOne;
  return r;
}

ResourceRequest gpus(int g) {
  ResourceRequest r;
  r.cpus = kOne;
  r.gpus = g * kOne;
  return r;
}

}  // namespace

TEST_CASE("higher priority work is decided first", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 2));
  s.node_changed();
  auto low1 = s.submit("batch", cpus(1), 0);
  auto low2 = s.submit("batch", cpus(1), 0);
  auto high = s.submit("urgent", cpus(1), 5);
  auto g = s.schedule();
  REQUIRE(g.size() == 2);
  CHECK(g[0].ticket == high);
  CHECK(g[1].ticket == low1);
  CHECK(s.queued() == 1);
  s.release("urgent", g[0].allocations[0]);
  auto g2 = s.schedule();
  REQUIRE(g2.size() == 1);
  CHECK(g2[0].ticket == low2);
}

TEST_CASE("weighted fair share converges to the weights", "[scheduler][queue]") {
  // Two backlogged jobs with weights 1 and 3 on 40 CPUs; tasks end at random. Measured: the share of
  // CPU-time each job got over the run. Tolerance: 3 points.
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  for (int i = 0; i < 5; ++i) s.cluster().add(node("n" + std::to_string(i), 8));
  s.node_changed();
  s.set_share("a", Share{"alice", 1, 1});
  s.set_share("b", Share{"bob", 3, 3});
  for (int i = 0; i < 20000; ++i) {  // more than 2000 steps can run: both stay backlogged
    s.submit("a", cpus(1));
    s.submit("b", cpus(1));
  }
  std::mt19937_64 rng(3);
  std::vector<Grant> running;
  double time_a = 0, time_b = 0;
  for (int step = 0; step < 2000; ++step) {
    for (auto& g : s.schedule()) running.push_back(g);
    for (const auto& g : running) (g.job == "a" ? time_a : time_b) += 1;
    for (std::size_t k = 0; k < running.size();) {  // each task ends with probability 1/10 per step
      if (rng() % 10 == 0) {
        s.release(running[k].job, running[k].allocations[0]);
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
      } else {
        ++k;
      }
    }
  }
  double share_b = time_b / (time_a + time_b);
  CHECK(share_b == Approx(0.75).margin(0.03));
  CHECK(s.dominant_share("b") == Approx(0.75).margin(0.1));
  CHECK(s.queued() > 10000);
}

TEST_CASE("small work backfills around a waiting gang", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 8, 4));
  s.cluster().add(node("b", 8, 4));
  s.node_changed();
  auto busy = s.submit("small", gpus(1));
  REQUIRE(s.schedule().size() == 1);
  GangRequest big;
  big.bundles.assign(2, gpus(4));
  big.strategy = GangStrategy::strict_spread;
  auto gang = s.submit_gang("train", big);
  for (int i = 0; i < 3; ++i) s.submit("small", gpus(1));
  auto g = s.schedule();  // the gang cannot run (node a has a busy GPU); the three small tasks can
  REQUIRE(g.size() == 3);
  for (const auto& x : g) CHECK(x.ticket != gang);
  (void)busy;
}

TEST_CASE("a large gang is never starved by a stream of small tasks", "[scheduler][queue]") {
  // 4 nodes x 4 GPUs; a stream of 1-GPU tasks keeps every node partly busy; a gang needs 4 whole nodes.
  // incremental: how the heads drive it (submit_or_place, schedule_freed after each release); otherwise full passes.
  auto run = [](std::chrono::milliseconds starvation_after, bool incremental = false) {
    FakeClock clock;
    Scheduler s(make_policy("pack"), SchedulerOptions{starvation_after}, clock.fn());
    for (int i = 0; i < 4; ++i) s.cluster().add(node("n" + std::to_string(i), 16, 4));
    s.node_changed();
    std::mt19937_64 rng(5);
    std::vector<Grant> running;
    GangRequest big;
    big.bundles.assign(4, gpus(4));
    big.strategy = GangStrategy::strict_spread;
    std::uint64_t gang = 0;
    for (int step = 0; step < 3000; ++step) {
      clock.t += 100ms;
      if (step == 20) gang = s.submit_gang("train", big);
      std::vector<Grant> granted;
      while (s.queued() < 30) {  // the stream never dries up
        if (!incremental) {
          s.submit("small", gpus(1));
          continue;
        }
        auto d = s.submit_or_place("small", gpus(1));
        for (auto& g : d.grants) granted.push_back(g);
      }
      if (!incremental) granted = s.schedule();
      for (std::size_t k = 0; k < running.size();) {
        if (rng() % 20 == 0) {
          auto node = running[k].allocations[0].node;
          s.release(running[k].job, running[k].allocations[0]);
          running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
          if (incremental)
            for (auto& g : s.schedule_freed(node)) granted.push_back(g);
        } else {
          ++k;
        }
      }
      for (auto& g : granted) {
        if (g.ticket == gang) return step;
        running.push_back(g);
      }
    }
    return -1;
  };
  // Without the starvation rule the gang never finds four idle nodes.
  CHECK(run(std::chrono::hours(1000)) == -1);
  // With it (starving after 5 s of waiting) the held nodes drain and the gang runs.
  int step = run(5s);
  CHECK(step > 20);
  CHECK(step < 20 + 50 + 400);  // 5 s = 50 steps to starve, then the held nodes drain
  CHECK(run(std::chrono::hours(1000), true) == -1);
  int incremental = run(5s, true);
  CHECK(incremental > 20);
  CHECK(incremental < 20 + 50 + 400);
}

TEST_CASE("work targeting a gang's bundle runs on its reservation, cancelling the gang frees it", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 8, 4));
  s.node_changed();
  GangRequest g;
  g.bundles = {gpus(2), gpus(2)};
  auto pg = s.submit_gang("train", g);
  auto placed = s.schedule();
  REQUIRE(placed.size() == 1);
  REQUIRE(placed[0].gang);
  REQUIRE(s.gang(pg));
  // The node has no free GPU outside the gang now.
  s.submit("other", gpus(1));
  CHECK(s.schedule().empty());
  ResourceRequest half;
  half.cpus = 0;
  half.gpus = 500;
  for (int i = 0; i < 4; ++i) s.submit("train", half, 0, BundleRef{pg, 1});
  s.submit("train", half, 0, BundleRef{pg, 1});  // the fifth half does not fit the 2-GPU bundle
  auto inside = s.schedule();
  REQUIRE(inside.size() == 4);
  for (const auto& x : inside) {
    bool in_bundle = false;
    for (const auto& [d, f] : placed[0].allocations[1].gpus) in_bundle = in_bundle || d == x.allocations[0].gpus[0].first;
    CHECK(in_bundle);
  }
  s.cancel(pg);
  CHECK_FALSE(s.gang(pg));
  auto after = s.schedule();  // "other" runs now that the reservation is gone
  REQUIRE(after.size() == 1);
  CHECK(after[0].job == "other");
}

TEST_CASE("cancelled queued work is never granted", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 1));
  s.node_changed();
  auto a = s.submit("j", cpus(1));
  auto b = s.submit("j", cpus(1));
  s.cancel(a);
  auto g = s.schedule();
  REQUIRE(g.size() == 1);
  CHECK(g[0].ticket == b);
  CHECK(s.queued() == 0);
}

TEST_CASE("a request never waits behind cancelled or placeable requests of its own shape", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 1));
  s.node_changed();
  auto a = s.submit_or_place("j", cpus(1));
  REQUIRE(a.mine());
  auto b = s.submit_or_place("j", cpus(1));  // the node is full: b waits
  CHECK_FALSE(b.mine());
  s.cancel(b.ticket);                        // its owner went away
  s.release("j", a.mine()->allocations[0]);  // capacity returns with nobody told
  auto c = s.submit_or_place("j", cpus(1));
  REQUIRE(c.mine());                         // not stuck behind the cancelled b
  CHECK(c.grants.size() == 1);
  auto d = s.submit_or_place("j", cpus(1));  // waits again
  CHECK_FALSE(d.mine());
  s.release("j", c.mine()->allocations[0]);
  auto e = s.submit_or_place("j", cpus(1));  // the older d goes first, then e waits
  REQUIRE(e.grants.size() == 1);
  CHECK(e.grants[0].ticket == d.ticket);
  CHECK(s.queued() == 1);
}

TEST_CASE("a job holding at least the share a waiting job would have owes it a lease", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 2));
  s.node_changed();
  auto grant = [&](const std::string& job) {
    s.submit(job, cpus(1));
    auto g = s.schedule();
    REQUIRE(g.size() == 1);
    return g[0].allocations[0];
  };
  auto a1 = grant("a");
  grant("a");
  CHECK(s.owed().empty());  // nobody waits
  s.submit("b", cpus(1));
  CHECK(s.schedule().empty());
  auto owed = s.owed();
  REQUIRE(owed.size() == 1);
  CHECK(owed[0].holder == "a");
  CHECK(owed[0].waiter == "b");
  CHECK(owed[0].request.cpus == kOne);

  // a and b hold one CPU each: b's second request is owed nothing (it would hold more than a), but a third
  // job with nothing is owed by one of them, once.
  s.release("a", a1);
  auto g = s.schedule();
  REQUIRE(g.size() == 1);
  CHECK(g[0].job == "b");
  s.submit("b", cpus(1));
  CHECK(s.owed().empty());
  s.submit("c", cpus(1));
  s.submit("c", cpus(1));
  owed = s.owed();
  REQUIRE(owed.size() == 1);
  CHECK(owed[0].waiter == "c");
  CHECK((owed[0].holder == "a" || owed[0].holder == "b"));
}

TEST_CASE("nothing is owed to lower-priority work or across to a user holding less", "[scheduler][queue]") {
  FakeClock clock;
  Scheduler s(make_policy("pack"), {}, clock.fn());
  s.cluster().add(node("a", 2));
  s.node_changed();
  s.set_share("urgent", Share{"alice", 1, 1});
  s.set_share("batch", Share{"bob", 1, 1});
  s.submit("urgent", cpus(1), 5);
  s.submit("urgent", cpus(1), 5);
  REQUIRE(s.schedule().size() == 2);
  s.submit("urgent", cpus(1), 5);  // urgent has more high-priority work waiting
  s.submit("batch", cpus(1), 0);
  CHECK(s.owed().empty());

  // Between users: bob's jobs together hold as much as alice would: each of bob's waiting jobs is owed by
  // alice's job only while alice holds at least what bob's user would hold after one more.
  FakeClock clock2;
  Scheduler t(make_policy("pack"), {}, clock2.fn());
  t.cluster().add(node("a", 4));
  t.node_changed();
  t.set_share("x", Share{"alice", 1, 1});
  t.set_share("y", Share{"bob", 1, 1});
  for (int i = 0; i < 3; ++i) t.submit("x", cpus(1));
  t.submit("y", cpus(1));
  REQUIRE(t.schedule().size() == 4);  // alice 3 CPUs, bob 1
  t.submit("y", cpus(1));
  auto owed = t.owed();
  REQUIRE(owed.size() == 1);  // alice 0.75 >= bob 0.25 + 0.25
  CHECK(owed[0].holder == "x");
  t.set_share("x", Share{"alice", 1, 4});  // alice weighs 4: 0.75 / 4 < bob's 0.5
  CHECK(t.owed().empty());
}
