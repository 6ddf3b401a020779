#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "cluster_fixture.hpp"

using namespace std::chrono_literals;

namespace {
int add(int a, int b) { return a + b; }
int boom(int x) { throw std::runtime_error("bad input " + std::to_string(x)); }
std::string where() { return iogrid::current_node(); }
int sleepy(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
std::atomic<int> flaky_calls{0};
int flaky() {
  if (flaky_calls.fetch_add(1) < 2) throw std::runtime_error("transient");
  return 7;
}
int fib(int n) {
  if (n < 2) return n;
  auto a = iogrid::task(fib).remote(n - 1);
  auto b = iogrid::task(fib).remote(n - 2);
  return iogrid::get(a) + iogrid::get(b);
}
// Fibonacci whose leaf at n == 1 fails: the failure climbs every level through nested gets.
int fib_fails(int n) {
  if (n == 1) throw std::runtime_error("leaf broke");
  if (n < 1) return 0;
  auto a = iogrid::task(fib_fails).remote(n - 1);
  auto b = iogrid::task(fib_fails).remote(n - 2);
  return iogrid::get(a) + iogrid::get(b);
}
// Fan-out 2, depth d: 2^d - 1 tasks, each waiting for its two children.
long tree(int d) {
  if (d == 1) return 1;
  auto a = iogrid::task(tree).remote(d - 1);
  auto b = iogrid::task(tree).remote(d - 1);
  return 1 + iogrid::get(a) + iogrid::get(b);
}
int threads_now() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return 0;
}
int sum_refs(std::vector<iogrid::ObjectRef<int>> refs) {
  int s = 0;
  for (auto& r : refs) s += iogrid::get(r);
  return s;
}
void nothing() {}
IOGRID_REMOTE(add);
IOGRID_REMOTE(boom);
IOGRID_REMOTE(where);
IOGRID_REMOTE(sleepy);
IOGRID_REMOTE(flaky);
IOGRID_REMOTE(fib);
IOGRID_REMOTE(fib_fails);
IOGRID_REMOTE(tree);
IOGRID_REMOTE(sum_refs);
IOGRID_REMOTE(nothing);
}  // namespace

TEST_CASE("a task graph computes through dependencies", "[tasks]") {
  Cluster c;
  auto a = iogrid::task(add).remote(1, 2);
  auto b = iogrid::task(add).remote(a, 10);
  auto d = iogrid::task(add).remote(a, b);
  REQUIRE(iogrid::get(d) == 16);
  iogrid::task(nothing).remote();
  auto v = iogrid::task(nothing).remote();
  iogrid::get(v);
}

TEST_CASE("tasks submit tasks and wait for them", "[tasks]") {
  Cluster c(iogrid::InitOptions{.nodes = {{.num_cpus = 4}}});
  REQUIRE(iogrid::get(iogrid::task(fib).remote(6)) == 8);
}

TEST_CASE("a deep task tree runs depth-first on the waiting workers, without a thread per waiting task", "[tasks]") {
  Cluster c;
  std::atomic<bool> done{false};
  std::atomic<int> peak{0};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak.load(), threads_now());
      std::this_thread::sleep_for(2ms);
    }
  });
  const long n = iogrid::get(iogrid::task(tree).remote(14));  // 16,383 tasks, 8,191 of them waiting on children
  done = true;
  sampler.join();
  CHECK(n == 16383);
  CHECK(peak.load() < 100);  // each parked task would hold a thread: thousands
}

TEST_CASE("refs inside values travel and resolve", "[tasks]") {
  Cluster c;
  std::vector<iogrid::ObjectRef<int>> refs;
  for (int i = 0; i < 10; ++i) refs.push_back(iogrid::task(add).remote(i, 0));
  REQUIRE(iogrid::get(iogrid::task(sum_refs).remote(refs)) == 45);
}

TEST_CASE("a task's exception reaches get() with task name, node and message", "[tasks][errors]") {
  Cluster c;
  auto r = iogrid::task(boom).remote(3);
  try {
    iogrid::get(r);
    FAIL("no exception");
  } catch (const iogrid::TaskError& e) {
    REQUIRE(e.task_name() == "boom");
    REQUIRE(e.node() == "node-0");
    REQUIRE(e.remote_message() == "bad input 3");
    REQUIRE(std::string(e.what()).find("task 'boom' failed on node 'node-0': bad input 3") != std::string::npos);
  }
}

TEST_CASE("a dependency's failure propagates to its dependents, naming the root once", "[tasks][errors]") {
  Cluster c;
  auto bad = iogrid::task(boom).remote(1);
  auto dependent = iogrid::task(add).remote(bad, 1);
  auto chained = iogrid::task(add).remote(dependent, 1);
  REQUIRE_THROWS_WITH(iogrid::get(chained),
                      "task 'boom' failed on node 'node-0' (through 2 dependent tasks): bad input 1");
  REQUIRE_THROWS_WITH(iogrid::get(dependent), "task 'boom' failed on node 'node-0' (through 1 dependent task): bad input 1");
}

TEST_CASE("a failure climbing nested gets names its root once, with the chain's length", "[tasks][errors]") {
  Cluster c;
  try {
    iogrid::get(iogrid::task(fib_fails).remote(6));
    FAIL("no exception");
  } catch (const iogrid::TaskError& e) {
    CHECK(e.task_name() == "fib_fails");
    CHECK(e.node() == "node-0");
    CHECK(e.remote_message() == "leaf broke");
    CHECK(e.through() == 5);  // fib_fails(6) -> 5 -> 4 -> 3 -> 2 -> 1: the leaf, then five parents
    const std::string what = e.what();
    CHECK(what == "task 'fib_fails' failed on node 'node-0' (through 5 dependent tasks): leaf broke");
  }
}

TEST_CASE("retry_exceptions re-runs a failing task up to max_retries", "[tasks][retries]") {
  Cluster c;
  flaky_calls = 0;
  auto r = iogrid::task(flaky).options({.max_retries = 3, .retry_exceptions = true}).remote();
  REQUIRE(iogrid::get(r) == 7);
  REQUIRE(flaky_calls == 3);
  flaky_calls = 0;
  auto r2 = iogrid::task(flaky).options({.max_retries = 1, .retry_exceptions = true}).remote();
  REQUIRE_THROWS_WITH(iogrid::get(r2), Catch::Contains("transient") && Catch::Contains("after 2 attempts"));
  flaky_calls = 0;
  auto r3 = iogrid::task(flaky).remote();  // exceptions are not retried by default
  REQUIRE_THROWS_AS(iogrid::get(r3), iogrid::TaskError);
  REQUIRE(flaky_calls == 1);
}

TEST_CASE("an impossible request fails fast naming the request and the closest node", "[tasks][scheduling]") {
  Cluster c(mixed_cluster());
  auto t0 = std::chrono::steady_clock::now();
  auto r = iogrid::task(where).options({.num_gpus = 1, .gpu_model = "H100"}).remote();
  try {
    iogrid::get(r, 10s);
    FAIL("no exception");
  } catch (const iogrid::InfeasibleError& e) {
    std::string m = e.what();
    INFO(m);
    REQUIRE(m.find("GPU 1 x H100") != std::string::npos);
    REQUIRE(m.find("closest node") != std::string::npos);
  }
  REQUIRE(std::chrono::steady_clock::now() - t0 < 2s);
  // Later submissions of the same shape fail too, and other shapes still run.
  REQUIRE_THROWS_AS(iogrid::get(iogrid::task(where).options({.num_gpus = 1, .gpu_model = "H100"}).remote()),
                    iogrid::InfeasibleError);
  REQUIRE(iogrid::get(iogrid::task(add).remote(1, 1)) == 2);
}

TEST_CASE("bad options are rejected at submission", "[tasks][errors]") {
  Cluster c;
  REQUIRE_THROWS_WITH(iogrid::task(add).options({.num_cpus = -1}).remote(1, 2), Catch::Contains("num_cpus"));
  REQUIRE_THROWS_WITH(iogrid::task(add).options({.num_gpus = 1.5}).remote(1, 2), Catch::Contains("whole number"));
  REQUIRE_THROWS_WITH(iogrid::task(add).options({.gpu_model = "A100"}).remote(1, 2), Catch::Contains("num_gpus > 0"));
}

TEST_CASE("GPU requests land on nodes with matching GPUs", "[tasks][scheduling]") {
  Cluster c(mixed_cluster());
  REQUIRE(iogrid::get(iogrid::task(where).options({.num_gpus = 1, .gpu_model = "A100"}).remote()) == "a100-eu");
  REQUIRE(iogrid::get(iogrid::task(where).options({.num_gpus = 0.5, .min_gpu_memory_gib = 20,
                                                   .labels = {{"region", "us"}}}).remote()) == "4090-us");
  REQUIRE(iogrid::get(iogrid::task(where).options({.num_gpus = 2}).remote()) == "a100-eu");
  REQUIRE(iogrid::get(iogrid::task(where).options({.node = "cpu"}).remote()) == "cpu");
}

TEST_CASE("a busy request waits for capacity instead of failing", "[tasks][scheduling]") {
  Cluster c(iogrid::InitOptions{.nodes = {{.num_cpus = 2}}});
  std::vector<iogrid::ObjectRef<int>> refs;
  for (int i = 0; i < 6; ++i) refs.push_back(iogrid::task(sleepy).options({.num_cpus = 2}).remote(20));
  auto t0 = std::chrono::steady_clock::now();
  auto vals = iogrid::get(refs);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  REQUIRE(vals == std::vector<int>(6, 20));
  REQUIRE(elapsed >= 110ms);  // 2 CPUs, each task holds both: they ran one at a time
}

TEST_CASE("get honours its timeout, wait splits ready from not ready", "[tasks]") {
  Cluster c;
  // Slow enough that it is still running when wait asks, even on a loaded machine under the sanitizers (at 300 ms
  // both were done once, and wait rightly found two ready).
  auto slow = iogrid::task(sleepy).remote(1500);
  auto fast = iogrid::task(sleepy).remote(0);
  REQUIRE_THROWS_AS(iogrid::get(slow, 20ms), iogrid::GetTimeoutError);
  auto w = iogrid::wait(std::vector{slow, fast}, 1, 2000ms);
  REQUIRE(w.ready.size() == 1);
  REQUIRE(w.ready[0] == fast);
  REQUIRE(w.not_ready.size() == 1);
  auto all = iogrid::wait(std::vector{slow, fast}, 2, 5000ms);
  REQUIRE(all.ready.size() == 2);
  REQUIRE(iogrid::get(slow) == 1500);
}

TEST_CASE("cancel stops a queued task, get says it was cancelled", "[tasks][cancel]") {
  Cluster c(iogrid::InitOptions{.nodes = {{.num_cpus = 1}}});
  auto blocker = iogrid::task(sleepy).remote(200);
  auto queued = iogrid::task(sleepy).remote(5000);
  iogrid::cancel(queued);
  REQUIRE_THROWS_AS(iogrid::get(queued, 1000ms), iogrid::TaskCancelledError);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(iogrid::get(blocker) == 200);
  auto after = iogrid::task(sleepy).remote(1);
  REQUIRE(iogrid::get(after) == 1);
  REQUIRE(std::chrono::steady_clock::now() - t0 < 3s);  // the cancelled 5 s task never ran
}

TEST_CASE("shutdown with work in flight neither hangs nor loses errors", "[tasks][shutdown]") {
  std::vector<iogrid::ObjectRef<int>> refs;
  iogrid::init(iogrid::InitOptions{.nodes = {{.num_cpus = 1}}});
  for (int i = 0; i < 50; ++i) refs.push_back(iogrid::task(sleepy).remote(10));
  auto t0 = std::chrono::steady_clock::now();
  iogrid::shutdown();
  REQUIRE(std::chrono::steady_clock::now() - t0 < 5s);
  int stopped = 0, done = 0;
  for (auto& r : refs) {
    REQUIRE(r.ready());
    try {
      int v = iogrid::get(r);
      REQUIRE(v == 10);
      ++done;
    } catch (const iogrid::RuntimeError&) {
      ++stopped;
    }
  }
  REQUIRE(stopped + done == 50);
  REQUIRE(stopped > 0);
  iogrid::shutdown();  // idempotent
  REQUIRE_THROWS_AS(iogrid::task(add).remote(1, 2), iogrid::RuntimeError);
}

TEST_CASE("init twice is an error, init after shutdown works", "[runtime]") {
  iogrid::init();
  REQUIRE_THROWS_AS(iogrid::init(), iogrid::RuntimeError);
  iogrid::shutdown();
  iogrid::init();
  REQUIRE(iogrid::get(iogrid::task(add).remote(2, 2)) == 4);
  iogrid::shutdown();
}
