#include <catch2/catch.hpp>
#include <chrono>

#include "cluster_fixture.hpp"

using namespace std::chrono_literals;

namespace {
struct Counter {
  explicit Counter(int start) : n(start) {}
  int add(int d) { return n += d; }
  int value() const { return n; }
  std::string node() const { return iogrid::current_node(); }
  int fail() { throw std::runtime_error("actor method failed"); }
  int slow_add(int d) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return n += d;
  }
  int n;
};
IOGRID_REMOTE(&Counter::slow_add);
IOGRID_REMOTE(&Counter::add);
IOGRID_REMOTE(&Counter::value);
IOGRID_REMOTE(&Counter::node);
IOGRID_REMOTE(&Counter::fail);

struct Broken {
  Broken() { throw std::runtime_error("cannot start"); }
  int value() { return 1; }
};
IOGRID_REMOTE(&Broken::value);

int slow_value(int v) {
  std::this_thread::sleep_for(50ms);
  return v;
}
IOGRID_REMOTE(slow_value);

int one(int i) { return i - i + 1; }
IOGRID_REMOTE(one);
}  // namespace

TEST_CASE("calls whose ref arguments finish while they are being submitted are never stranded", "[actors]") {
  // Ref arguments that complete at every possible moment of submission (a race once left calls waiting
  // forever); a stranded call shows up as a get timeout here instead of a hang.
  Cluster c;
  for (int round = 0; round < 40; ++round) {
    auto counter = iogrid::actor<Counter>(0).remote();
    iogrid::ObjectRef<int> last;
    for (int i = 0; i < 500; ++i) last = counter.call(&Counter::add).remote(iogrid::task(one).remote(i));
    REQUIRE(iogrid::get(last, 10s) == 500);
  }
}

TEST_CASE("an actor keeps state and runs one caller's calls in order", "[actors]") {
  Cluster c;
  auto counter = iogrid::actor<Counter>(100).remote();
  std::vector<iogrid::ObjectRef<int>> rs;
  for (int i = 1; i <= 200; ++i) rs.push_back(counter.call(&Counter::add).remote(1));
  auto vals = iogrid::get(rs);
  for (int i = 0; i < 200; ++i) REQUIRE(vals[i] == 101 + i);
  REQUIRE(iogrid::get(counter.call(&Counter::value).remote()) == 300);
}

TEST_CASE("a call waiting for a ref argument holds back later calls, in order", "[actors]") {
  Cluster c;
  auto counter = iogrid::actor<Counter>(0).remote();
  auto slow = iogrid::task(slow_value).remote(10);
  auto first = counter.call(&Counter::add).remote(slow);  // waits ~50 ms for its argument
  auto second = counter.call(&Counter::add).remote(1);
  REQUIRE(iogrid::get(first) == 10);
  REQUIRE(iogrid::get(second) == 11);
}

TEST_CASE("a method's exception fails that call only", "[actors][errors]") {
  Cluster c;
  auto counter = iogrid::actor<Counter>(1).remote();
  REQUIRE_THROWS_WITH(iogrid::get(counter.call(&Counter::fail).remote()), Catch::Contains("actor method failed"));
  REQUIRE(iogrid::get(counter.call(&Counter::add).remote(1)) == 2);
}

TEST_CASE("a killed actor fails later calls, max_restarts brings it back fresh", "[actors][restarts]") {
  Cluster c;
  auto once = iogrid::actor<Counter>(5).options({.max_restarts = 1}).remote();
  REQUIRE(iogrid::get(once.call(&Counter::add).remote(1)) == 6);
  once.kill(/*no_restart=*/false);
  REQUIRE(iogrid::get(once.call(&Counter::value).remote(), 5000ms) == 5);  // rebuilt from its constructor args
  once.kill(false);  // no restarts left
  REQUIRE_THROWS_AS(iogrid::get(once.call(&Counter::value).remote(), 5000ms), iogrid::ActorDiedError);

  auto plain = iogrid::actor<Counter>(0).remote();
  plain.kill();
  REQUIRE_THROWS_WITH(iogrid::get(plain.call(&Counter::value).remote(), 5000ms), Catch::Contains("was killed"));
}

TEST_CASE("max_task_retries moves the calls queued at a restart to the new incarnation, in order", "[actors][restarts]") {
  Cluster c;
  for (int retries : {0, 1}) {
    INFO("max_task_retries = " << retries);
    auto a = iogrid::actor<Counter>(10).options({.max_restarts = 1, .max_task_retries = retries}).remote();
    REQUIRE(iogrid::get(a.call(&Counter::add).remote(0), 5000ms) == 10);  // constructed
    auto running = a.call(&Counter::slow_add).remote(1);
    std::vector<iogrid::ObjectRef<int>> queued;
    for (int i = 0; i < 3; ++i) queued.push_back(a.call(&Counter::add).remote(1));
    std::this_thread::sleep_for(100ms);  // slow_add is running, the adds wait behind it
    a.kill(/*no_restart=*/false);
    REQUIRE(iogrid::get(running, 5000ms) == 11);  // the call in progress finishes on the old instance
    for (int i = 0; i < 3; ++i) {
      if (retries == 0) {
        REQUIRE_THROWS_WITH(iogrid::get(queued[i], 5000ms), Catch::Contains("is restarting"));
      } else {
        REQUIRE(iogrid::get(queued[i], 5000ms) == 11 + i);  // the new instance starts again from 10
      }
    }
  }
  REQUIRE_THROWS_WITH(iogrid::actor<Counter>(0).options({.max_task_retries = -2}).remote(),
                      Catch::Contains("max_task_retries"));
}

TEST_CASE("a constructor failure makes every call fail with its message", "[actors][errors]") {
  Cluster c;
  auto b = iogrid::actor<Broken>().remote();
  REQUIRE_THROWS_WITH(iogrid::get(b.call(&Broken::value).remote(), 5000ms),
                      Catch::Contains("constructor") && Catch::Contains("cannot start"));
}

TEST_CASE("actors are placed by their resource request", "[actors][scheduling]") {
  Cluster c(mixed_cluster());
  auto a = iogrid::actor<Counter>(0).options({.num_gpus = 0.5, .gpu_model = "RTX4090"}).remote();
  REQUIRE(iogrid::get(a.call(&Counter::node).remote()) == "4090-us");
  auto bad = iogrid::actor<Counter>(0).options({.num_gpus = 4}).remote();
  REQUIRE_THROWS_AS(iogrid::get(bad.call(&Counter::value).remote(), 5000ms), iogrid::InfeasibleError);
}

TEST_CASE("dropping every handle lets queued calls finish, then frees the actor", "[actors]") {
  Cluster c;
  iogrid::ObjectRef<int> last;
  {
    auto counter = iogrid::actor<Counter>(0).remote();
    for (int i = 0; i < 10; ++i) last = counter.call(&Counter::add).remote(1);
  }
  REQUIRE(iogrid::get(last, 5000ms) == 10);
}
