// A driver program for the multi-process tests: `cluster_driver SCENARIO [ARGS]` with IOGRID_ADDRESS set.
// Its own executable is what the nodes run as workers, so it calls iogrid::init() first thing.
// Prints "OK" and exits 0 when every check of the scenario holds; prints what was wrong and exits 1 otherwise.
#include <array>
#include <iogrid/iogrid.hpp>
#include <iogrid/train.hpp>
#include <iogrid/tune.hpp>
#include <iogrid/tune/mlp_trial.hpp>

#include "../libs/synthetic.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

long square(long x) { return x * x; }
long add(long a, long b) { return a + b; }
std::string where() { return iogrid::current_node(); }
std::string host_of_worker() { return iogrid::current_host(); }
// A member of a 2-member group (an actor: members must run at once): its process id, the host backend the
// group took, and an allreduce's sum.
struct PairMember {
  std::vector<std::string> join(std::string name, int rank) {
    auto g = iogrid::collective::Group::join(name, rank, 2, {.timeout = std::chrono::seconds(30)});
    std::vector<float> v(1000, float(rank + 1));
    g.allreduce(v);
    return {std::to_string(::getpid()), g.backend(), std::to_string(v[999])};
  }
};
long slow_square(long x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x * x;
}
int fail_with(std::string msg) { throw std::runtime_error(msg); }
int crash(int) {
  std::abort();
}
std::vector<double> scale(std::vector<double> v, double k) {
  for (auto& x : v) x *= k;
  return v;
}
IOGRID_REMOTE(square);
IOGRID_REMOTE(add);
IOGRID_REMOTE(where);
IOGRID_REMOTE(host_of_worker);
IOGRID_REMOTE(&PairMember::join);
IOGRID_REMOTE(slow_square);
IOGRID_REMOTE(fail_with);
IOGRID_REMOTE(crash);
IOGRID_REMOTE(scale);
std::vector<std::uint8_t> make_blob(std::uint64_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::uint64_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return v;
}
// The sum of the blob's bytes, and how many bytes this process pulled over the data plane so far.
std::pair<std::uint64_t, std::uint64_t> blob_sum(const std::vector<std::uint8_t>& v) {
  std::uint64_t s = 0;
  for (auto b : v) s += b;
  return {s, iogrid::transfer_stats().bytes};
}
IOGRID_REMOTE(make_blob);
// Pulls the object inside `box` here and says how: "direct", "punched" when this process's connection to its
// holder was made by hole punching, "relayed" when it went through the head's relay (a ref inside a vector is
// fetched by get, not before the call).
std::string pull_path(const std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>>& box) {
  const auto before = iogrid::transfer_stats();
  const auto v = iogrid::get(box.at(0), std::chrono::seconds(60));
  std::uint64_t sum = 0;
  for (auto b : v) sum += b;
  std::uint64_t want = 0;
  for (std::uint64_t i = 0; i < v.size(); ++i) want += static_cast<std::uint8_t>(i * 7 + 3);
  if (sum != want) return "corrupt";
  const auto after = iogrid::transfer_stats();
  return after.relayed > before.relayed ? "relayed" : after.punched > before.punched ? "punched" : "direct";
}
IOGRID_REMOTE(pull_path);
// An actor that pulls objects: its worker process lives as long as the job (a task's may be replaced).
struct Puller {
  std::string pull(std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> box) { return pull_path(box); }
  int pid() { return static_cast<int>(::getpid()); }
};
IOGRID_REMOTE(&Puller::pull);
IOGRID_REMOTE(&Puller::pid);
// A member of a collective group ("auto": Gloo when every member can dial every other, else the ring, whose
// links are dialled directly or met at the head's relay): allreduces `n` floats and checks the sum;
// "LINKS|OK" or "LINKS|BAD ..." (LINKS: how each ring link was made; empty for Gloo).
std::string ring_member(std::string group, int rank, int size, std::uint64_t n) {
  auto g = iogrid::collective::Group::join(group, rank, size, {.timeout = std::chrono::seconds(90)});
  std::vector<float> v(n);
  for (std::uint64_t i = 0; i < n; ++i) v[i] = float(rank + 1) * float(i % 5);
  g.allreduce(v);
  const float ranks = float(size * (size + 1) / 2);
  for (std::uint64_t i = 0; i < n; ++i)
    if (v[i] != ranks * float(i % 5)) return g.links() + "|BAD at " + std::to_string(i);
  std::vector<std::int64_t> r{rank};
  g.broadcast(r, size - 1);
  if (r[0] != size - 1) return g.links() + "|BAD broadcast";
  g.barrier();
  return g.links() + "|OK";
}
IOGRID_REMOTE(ring_member);
// A task that submits tasks and waits for them (nested graph across processes).
long fan(long n) {
  std::vector<iogrid::ObjectRef<long>> refs;
  for (long i = 1; i <= n; ++i) refs.push_back(iogrid::task(square).remote(i));
  long s = 0;
  for (auto& r : refs) s += iogrid::get(r, std::chrono::seconds(60));
  return s;
}
IOGRID_REMOTE(fan);
// A task that submits tasks pinned to node `to` (a nested owner whose workers elsewhere must reach it): where
// they ran, "all on TO" when every one ran there.
std::string fan_to(std::string to, long n) {
  std::vector<iogrid::ObjectRef<std::string>> refs;
  for (long i = 0; i < n; ++i) refs.push_back(iogrid::task(where).options({.node = to}).remote());
  for (auto& r : refs)
    if (auto w = iogrid::get(r, std::chrono::seconds(90)); w != to) return "one ran on " + w;
  return "all on " + to;
}
IOGRID_REMOTE(fan_to);
// Nested gets several levels deep whose leaf fails: the driver must see the root once.
long deep_fail(long n) {
  if (n == 0) throw std::runtime_error("the leaf broke");
  return iogrid::get(iogrid::task(deep_fail).remote(n - 1), std::chrono::seconds(60)) + 1;
}
IOGRID_REMOTE(deep_fail);
// Fan-out 2, depth d: 2^d - 1 tasks; with `alternate`, levels alternate their CPU request (0.5 and 1 CPU), so
// no child can run inline on its parent's lease and every parked parent needs another lease for its children.
long tree(int d, bool alternate) {
  if (d == 1) return 1;
  iogrid::TaskOptions o;
  if (alternate) o.num_cpus = d % 2 ? 0.5 : 1;
  auto a = iogrid::task(tree).options(o).remote(d - 1, alternate);
  auto b = iogrid::task(tree).options(o).remote(d - 1, alternate);
  return 1 + iogrid::get(a, std::chrono::seconds(120)) + iogrid::get(b, std::chrono::seconds(120));
}
IOGRID_REMOTE(tree);
// Busy for `seconds` on one core (user work that saturates a machine).
long burn(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  volatile long x = 0;
  while (std::chrono::steady_clock::now() < until)
    for (int i = 0; i < 100000; ++i) x = x + i;
  return 1;
}
IOGRID_REMOTE(burn);
// ObjectRefs inside values crossing processes.
long sum_refs(std::vector<iogrid::ObjectRef<long>> refs) {
  long s = 0;
  for (auto& r : refs) s += iogrid::get(r, std::chrono::seconds(60));
  return s;
}
std::vector<iogrid::ObjectRef<long>> make_refs(long n) {
  std::vector<iogrid::ObjectRef<long>> v;
  for (long i = 1; i <= n; ++i) v.push_back(iogrid::task(square).remote(i));
  return v;
}
iogrid::ObjectRef<std::vector<std::uint8_t>> big_ref(std::uint64_t n) { return iogrid::task(make_blob).remote(n); }
IOGRID_REMOTE(sum_refs);
IOGRID_REMOTE(make_refs);
IOGRID_REMOTE(big_ref);

int shout(std::string msg) {
  std::cout << msg << std::endl;
  return 1;
}
IOGRID_REMOTE(shout);

IOGRID_REMOTE(blob_sum);

class Counter {
 public:
  explicit Counter(long start) : n_(start) {}
  long add(long k) { return n_ += k; }
  long value() const { return n_; }
  std::string node() const { return iogrid::current_node(); }

 private:
  long n_;
};
IOGRID_REMOTE(&Counter::add);
IOGRID_REMOTE(&Counter::value);
IOGRID_REMOTE(&Counter::node);

namespace {
int failures = 0;
// Spot checks: the node named "cheater" returns a wrong answer (small), or flips a byte of a large one.
std::int64_t checked_square(std::int64_t x) { return x * x + (iogrid::current_node() == "cheater" ? 1 : 0); }
IOGRID_REMOTE(checked_square);
std::vector<std::uint8_t> checked_blob(std::uint64_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::uint64_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 31 + 7);
  if (iogrid::current_node() == "cheater") v[n / 2] ^= 1;
  return v;
}
IOGRID_REMOTE(checked_blob);
std::int64_t plain_square(std::int64_t x) { return x * x; }
IOGRID_REMOTE(plain_square);

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cout << "FAILED: " << what << std::endl;
    ++failures;
  }
}

// Polls the nodes' object stores until every one is empty (true) or the time is up (false).
bool stores_empty_within(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    bool empty = true;
    for (const auto& node : iogrid::nodes())
      if (node.object_store_used_bytes != 0) empty = false;
    if (empty) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

long sum_of_squares_graph(long n) {
  std::vector<iogrid::ObjectRef<long>> level;
  for (long i = 1; i <= n; ++i) level.push_back(iogrid::task(square).remote(i));
  while (level.size() > 1) {
    std::vector<iogrid::ObjectRef<long>> next;
    for (std::size_t i = 0; i + 1 < level.size(); i += 2) next.push_back(iogrid::task(add).remote(level[i], level[i + 1]));
    if (level.size() % 2) next.push_back(level.back());
    level = std::move(next);
  }
  return iogrid::get(level[0], 60s);
}

// Three nodes: "a100" (2 x A100), "rtx" (1 x RTX4090), "cpu" (no GPU, region=eu).
void graph() {
  check(iogrid::nodes().size() == 3, "three nodes are visible");
  long n = 300;
  check(sum_of_squares_graph(n) == n * (n + 1) * (2 * n + 1) / 6, "the task graph's result");
  auto on_a100 = iogrid::get(iogrid::task(where).options({.num_gpus = 1, .gpu_model = "A100"}).remote(), 30s);
  check(on_a100 == "a100", "an A100 task runs on the A100 node (ran on " + on_a100 + ")");
  auto on_rtx = iogrid::get(iogrid::task(where).options({.num_gpus = 0.5, .gpu_model = "RTX4090|L4"}).remote(), 30s);
  check(on_rtx == "rtx", "an RTX4090 task runs on the RTX node (ran on " + on_rtx + ")");
  auto on_eu = iogrid::get(iogrid::task(where).options({.labels = {{"region", "eu"}}}).remote(), 30s);
  check(on_eu == "cpu", "a region=eu task runs on the eu node (ran on " + on_eu + ")");
  std::vector<double> big(50000, 1.5);  // 400 KB argument and result
  auto scaled = iogrid::get(iogrid::task(scale).remote(big, 2.0), 30s);
  check(scaled.size() == big.size() && scaled.front() == 3.0 && scaled.back() == 3.0, "a large argument and result");

  auto counter = iogrid::actor<Counter>(10).options({.num_gpus = 0.5, .gpu_model = "A100"}).remote();
  std::vector<iogrid::ObjectRef<long>> adds;
  for (int i = 0; i < 100; ++i) adds.push_back(counter.call(&Counter::add).remote(1));
  check(iogrid::get(adds.back(), 30s) == 110, "the actor saw its calls in order");
  check(iogrid::get(counter.call(&Counter::value).remote(), 30s) == 110, "the actor keeps its state");
  check(iogrid::get(counter.call(&Counter::node).remote(), 30s) == "a100", "the actor lives on the A100 node");
  // An ObjectRef argument produced by a task feeds an actor call.
  check(iogrid::get(counter.call(&Counter::add).remote(iogrid::task(square).remote(3L)), 30s) == 119,
        "an ObjectRef argument to an actor call");

  try {
    iogrid::get(iogrid::task(fail_with).remote(std::string("boom")), 30s);
    check(false, "a throwing task raises TaskError");
  } catch (const iogrid::TaskError& e) {
    check(e.remote_message().find("boom") != std::string::npos, "TaskError carries the remote message");
    check(!e.node().empty() && e.node() != "driver", "TaskError names the node");
  }
  try {
    iogrid::get(iogrid::task(where).options({.num_gpus = 1, .gpu_model = "H100"}).remote(), 30s);
    check(false, "an H100 request is infeasible");
  } catch (const iogrid::InfeasibleError& e) {
    check(std::string(e.what()).find("closest node") != std::string::npos, "the infeasible error names the closest node");
  }
}

// Tasks that take a while, so a test can kill a node in the middle; every result must still be right.
void slow(long n, int ms) {
  std::vector<iogrid::ObjectRef<long>> refs;
  for (long i = 0; i < n; ++i) refs.push_back(iogrid::task(slow_square).options({.max_retries = 5}).remote(i, ms));
  auto counter = iogrid::actor<Counter>(0).options({.max_restarts = 3}).remote();
  std::cout << "submitted" << std::endl;
  long sum = 0;
  for (auto& r : refs) sum += iogrid::get(r, 120s);
  long want = 0;
  for (long i = 0; i < n; ++i) want += i * i;
  check(sum == want, "sum of " + std::to_string(n) + " squares after failures: " + std::to_string(sum) + " vs " + std::to_string(want));
  // The actor works afterwards (restarted elsewhere if its node died).
  check(iogrid::get(counter.call(&Counter::add).remote(5L), 60s) >= 5, "the actor answers after the failure");
}

// Holds every CPU with long tasks and waits; a test kills this driver.
void hang() {
  std::vector<iogrid::ObjectRef<long>> refs;
  for (long i = 0; i < 16; ++i) refs.push_back(iogrid::task(slow_square).remote(i, 60000));
  std::cout << "submitted" << std::endl;
  iogrid::get(refs[0], 600s);
}

// Large objects stay on the node that made them and move node to node over the data plane; they are freed
// on that node once no one refers to them.
void objects(std::uint64_t n) {
  std::uint64_t want = 0;
  for (std::uint64_t i = 0; i < n; ++i) want += static_cast<std::uint8_t>(i * 7 + 3);
  {
    auto blob = iogrid::task(make_blob).options({.node = "n1"}).remote(n);
    auto sum = iogrid::get(iogrid::task(blob_sum).options({.node = "n2"}).remote(blob), 60s);
    check(sum.first == want, "the consumer on n2 saw the producer's bytes");
    check(sum.second >= n, "the consumer pulled the object over the data plane (" + std::to_string(sum.second) + " bytes)");
    auto local = iogrid::get(blob, 60s);
    check(local.size() == n && local[1] == 10, "the driver can get the object too");
    bool stored = false;
    for (int i = 0; i < 50 && !stored; ++i) {
      for (const auto& node : iogrid::nodes())
        if (node.name == "n1" && node.object_store_used_bytes >= static_cast<std::int64_t>(n)) stored = true;
      if (!stored) std::this_thread::sleep_for(100ms);
    }
    check(stored, "n1's object store holds the object while it is referenced");
    std::cout << "holding" << std::endl;  // the test looks at the head's object directory now
    std::this_thread::sleep_for(1500ms);
    // A large driver value passed to a remote task is pulled from the driver.
    std::vector<std::uint8_t> mine(n, 1);
    auto ref = iogrid::put(mine);
    auto s2 = iogrid::get(iogrid::task(blob_sum).options({.node = "n2"}).remote(ref), 60s);
    check(s2.first == n, "a large driver value reaches a remote task");
    const auto t = iogrid::transfer_stats();  // this driver's own pulls: the object from n1
    std::cout << "DRIVER PULLS relayed=" << t.relayed << " punched=" << t.punched << std::endl;
  }
  bool freed = stores_empty_within(10s);
  check(freed, "the objects are freed on every node once no one refers to them");
}

// Lineage: an object whose only copy was on a node that dies is rebuilt by running its task again.
void lineage(std::uint64_t n) {
  auto blob = iogrid::task(make_blob).remote(n);  // the only node is "victim"
  auto doubled = iogrid::task(make_blob).remote(n / 2);
  (void)iogrid::get(iogrid::task(blob_sum).remote(doubled), 60s);
  iogrid::wait(std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>>{blob}, 1, 60s);
  std::cout << "produced" << std::endl;
  // The test adds node n2, then kills the victim.
  for (int i = 0; i < 600; ++i) {
    auto ns = iogrid::nodes();
    if (ns.size() == 1 && ns[0].name == "n2") break;
    std::this_thread::sleep_for(50ms);
  }
  std::uint64_t want = 0;
  for (std::uint64_t i = 0; i < n; ++i) want += static_cast<std::uint8_t>(i * 7 + 3);
  auto sum = iogrid::get(iogrid::task(blob_sum).remote(blob), 60s);
  check(sum.first == want, "a task reading an object lost with its node sees the rebuilt value");
  auto local = iogrid::get(blob, 60s);
  check(local.size() == n && local[2] == 17, "the driver gets the rebuilt object");
}

// Tasks submitting tasks: more parents than CPUs, each waiting on its children (they lend their CPUs).
void nested() {
  std::vector<iogrid::ObjectRef<long>> parents;
  for (int i = 0; i < 8; ++i) parents.push_back(iogrid::task(fan).remote(20L));
  for (auto& p : parents) check(iogrid::get(p, 120s) == 2870, "a nested fan-out's sum");
  try {
    iogrid::get(iogrid::task(deep_fail).remote(3L), 120s);
    check(false, "a failing leaf three levels down raises TaskError");
  } catch (const iogrid::TaskError& e) {
    check(e.task_name() == "deep_fail" && e.remote_message() == "the leaf broke" && e.through() == 3 &&
              !e.node().empty(),
          "the failure names its root once across worker processes (" + std::string(e.what()) + ")");
  }
}

void refs_in_values() {
  std::vector<iogrid::ObjectRef<long>> refs;
  for (long i = 1; i <= 20; ++i) refs.push_back(iogrid::task(square).remote(i));
  check(iogrid::get(iogrid::task(sum_refs).remote(refs), 60s) == 2870, "refs inside an argument reach the task");
  auto box = iogrid::put(refs);
  check(iogrid::get(iogrid::task(sum_refs).remote(box), 60s) == 2870, "refs inside an ObjectRef argument's value");
  auto made = iogrid::get(iogrid::task(make_refs).remote(10L), 60s);
  long s = 0;
  for (auto& r : made) s += iogrid::get(r, 60s);
  check(made.size() == 10 && s == 385, "refs a task returns (to results of its own nested tasks) stay usable");
  std::uint64_t n = 4u << 20;
  auto inner = iogrid::get(iogrid::task(big_ref).remote(n), 60s);
  auto blob = iogrid::get(inner, 60s);
  check(blob.size() == n && blob[1] == 10, "a returned ref to a large object made by a nested task");
  inner = {};
  blob.clear();
  bool freed = stores_empty_within(10s);
  check(freed, "the large object is freed once the driver drops the ref it was handed");
}

// A task that kills its worker process: retried, then a TaskError; other work is unaffected.
void crashing() {
  auto bad = iogrid::task(crash).options({.max_retries = 1}).remote(1);
  try {
    iogrid::get(bad, 60s);
    check(false, "a crashing task raises TaskError");
  } catch (const iogrid::TaskError& e) {
    check(std::string(e.what()).find("2 attempts") != std::string::npos, std::string("the error counts attempts: ") + e.what());
  }
  check(sum_of_squares_graph(50) == 42925, "other tasks still run");
  // Actors for the dashboard's actor table: one restarted once, one killed for good.
  auto kept = iogrid::actor<Counter>(1).options({.max_restarts = 1}).remote();
  check(iogrid::get(kept.call(&Counter::add).remote(1), 30s) == 2, "an actor call");
  kept.kill(/*no_restart=*/false);
  check(iogrid::get(kept.call(&Counter::value).remote(), 30s) == 1, "a restarted actor starts from its constructor");
  auto gone = iogrid::actor<Counter>(0).remote();
  check(iogrid::get(gone.call(&Counter::value).remote(), 30s) == 0, "a second actor");
  gone.kill();
}
// The workloads in worker processes: a 2-worker trainer whose group meets through the head's key-value store,
// and a small sweep of MLP trials as actors.
void workloads() {
  // Collective groups listen on current_host(): the machine's address as the head sees it (loopback, or the
  // driver's and the nodes' own addresses when the test runs them in network namespaces).
  const std::string driver_host = std::getenv("EXPECT_DRIVER_HOST") ? std::getenv("EXPECT_DRIVER_HOST") : "127.0.0.1";
  const std::string node_hosts = std::getenv("EXPECT_NODE_HOSTS") ? std::getenv("EXPECT_NODE_HOSTS") : "127.0.0.1";
  check(iogrid::current_host() == driver_host, "the driver's host is " + iogrid::current_host() + ", not " + driver_host);
  const auto worker_host = iogrid::get(iogrid::task(host_of_worker).remote());
  check(("," + node_hosts + ",").find("," + worker_host + ",") != std::string::npos,
        "a worker process's host is " + worker_host + ", not one of " + node_hosts);
  // Members in two worker processes meet through Gloo; members that are threads of one process share memory.
  auto p0 = iogrid::actor<PairMember>().remote(), p1 = iogrid::actor<PairMember>().remote();
  auto m0 = p0.call(&PairMember::join).remote(std::string("cluster-group"), 0);
  auto m1 = p1.call(&PairMember::join).remote(std::string("cluster-group"), 1);
  const auto a = iogrid::get(m0, 60s), b = iogrid::get(m1, 60s);
  const std::string expected = a[0] == b[0] ? "local" : "gloo";
  std::cout << "group members in processes " << a[0] << " and " << b[0] << " took " << a[1] << "\n";
  check(a[1] == expected && b[1] == expected, "group members in processes " + a[0] + " and " + b[0] + " took " + a[1] +
                                                  " and " + b[1] + ", expected " + expected);
  check(a[2] == "3.000000" && b[2] == "3.000000", "the allreduce's sum is " + a[2] + " and " + b[2]);
  auto train = synthetic(1600, 32, 4, 1), test = synthetic(400, 32, 4, 2);
  iogrid::train::Config c;
  c.model.layers = {32, 16, 4};
  c.workers = 2;
  c.epochs = 2;
  c.batch_size = 16;
  c.collective_timeout = 10s;
  auto r = iogrid::train::fit(train, test, c);
  check(r.replicas_identical, "the two workers' replicas are identical");
  check(r.test_accuracy > 0.9, "training in worker processes learns: test accuracy " + std::to_string(r.test_accuracy));
  namespace tune = iogrid::tune;
  tune::Space s;
  s.add("lr", tune::grid({0.01, 0.1})).add("hidden", tune::grid({8, 16}));
  tune::Config tc;
  tc.max_iterations = 2;
  tc.max_concurrent = 2;
  tc.scheduler = std::make_shared<tune::AshaScheduler>();
  auto sw = tune::run<tune::MlpTrial>(s, tc, tune::mlp_trial_data(train, test, 4));
  check(sw.best_metric() > 0.9, "the sweep's best trial learns: " + std::to_string(sw.best_metric()));
  check(sw.trials.size() == 4, "four trials");
  std::cout << sw.table();
}
}  // namespace

int main(int argc, char** argv) {
  iogrid::init(iogrid::options_from_args(argc, argv));
  std::string scenario = argc > 1 ? argv[1] : "graph";
  try {
    if (scenario == "graph") graph();
    else if (scenario == "slow") slow(argc > 2 ? std::atol(argv[2]) : 200, argc > 3 ? std::atoi(argv[3]) : 20);
    else if (scenario == "hang") hang();
    else if (scenario == "pull_matrix" && argc > 3) {
      // Every node named makes an object; every other one pulls it. Prints "PATH holder puller direct|punched|relayed".
      std::vector<std::string> nodes(argv + 2, argv + argc);
      std::map<std::string, iogrid::ObjectRef<std::vector<std::uint8_t>>> made;
      for (const auto& n : nodes) made.emplace(n, iogrid::task(make_blob).options({.node = n}).remote(std::uint64_t(2u << 20)));
      for (const auto& [n, ref] : made) iogrid::wait(std::vector{ref}, 1, 60s);
      for (const auto& holder : nodes)
        for (const auto& puller : nodes) {
          if (holder == puller) continue;
          std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> box{made.at(holder)};
          const auto path = iogrid::get(iogrid::task(pull_path).options({.node = puller}).remote(box), 120s);
          check(path != "corrupt", "the bytes " + puller + " pulled from " + holder);
          std::cout << "PATH " << holder << " " << puller << " " << path << std::endl;
        }
    }
    else if (scenario == "spot_check") {
      // Work on the cheater, every run checked: each answer the user gets is the honest one.
      std::vector<iogrid::ObjectRef<std::int64_t>> small;
      for (int i = 0; i < 20; ++i) small.push_back(iogrid::task(checked_square).options({.node = "cheater", .verify_fraction = 1}).remote(i));
      for (int i = 0; i < 20; ++i) check(iogrid::get(small[i], 120s) == std::int64_t(i) * i, "an honest square");
      const std::uint64_t n = 3u << 20;  // large: left where it was made, fetched to compare
      auto big = iogrid::get(iogrid::task(checked_blob).options({.node = "cheater", .verify_fraction = 1}).remote(n), 120s);
      bool same = big.size() == n;
      for (std::uint64_t i = 0; same && i < n; ++i) same = big[i] == static_cast<std::uint8_t>(i * 31 + 7);
      check(same, "the honest large result");
      // Honest providers agree with each other.
      check(iogrid::get(iogrid::task(plain_square).options({.node = "honest-1", .verify_fraction = 1}).remote(5), 120s) == 25,
            "an honest provider's square");
      const auto s = iogrid::spot_checks();
      std::cout << "CHECKS settled=" << s.settled << " agreed=" << s.agreed << " unchecked=" << s.unchecked
                << " extra_runs=" << s.extra_runs << std::endl;
    }
    else if (scenario == "relay_switch") {
      // An actor on n2 pulls an object made on n1 (neither can be dialled: through a relay); then, once node
      // "relay" is gone (the test kills it), the same actor pulls another: through the relay its node moved to.
      auto a = iogrid::actor<Puller>().options({.node = "n2"}).remote();
      const int pid = iogrid::get(a.call(&Puller::pid).remote(), 60s);
      auto pull = [&] {
        auto blob = iogrid::task(make_blob).options({.node = "n1"}).remote(std::uint64_t(4u << 20));
        std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> box{blob};
        iogrid::wait(box, 1, 60s);  // a ref inside a value must be done before it crosses processes
        return iogrid::get(a.call(&Puller::pull).remote(box), 120s);
      };
      std::cout << "PULL1 " << pull() << std::endl;
      std::cout << "WAITING" << std::endl;
      bool gone = false;
      for (int i = 0; i < 600 && !gone; ++i) {
        gone = true;
        for (const auto& n : iogrid::nodes())
          if (n.name == "relay") gone = false;
        if (!gone) std::this_thread::sleep_for(100ms);
      }
      check(gone, "the relay's node was declared dead");
      std::this_thread::sleep_for(1s);  // the head has told the nodes, and they their workers
      std::cout << "PULL2 " << pull() << std::endl;
      check(iogrid::get(a.call(&Puller::pid).remote(), 60s) == pid, "the same actor process pulled both");
    }
    else if (scenario == "ring_across" && argc > 3) {
      // A ring group with one member on each node named (rank = position), a large allreduce through it, and a
      // large object made on the first node read on every other: prints "LINKS 0>1 path, ...".
      const int size = argc - 2;
      const std::uint64_t n = 4u << 20;  // 16 MiB of floats per member
      std::vector<iogrid::ObjectRef<std::string>> members;
      for (int r = 0; r < size; ++r)
        members.push_back(iogrid::task(ring_member).options({.node = argv[2 + r]}).remote(std::string("across"), r, size, n));
      std::string links;
      for (auto& m : members) {
        const auto got = iogrid::get(m, 300s);
        const auto bar = got.rfind('|');
        check(bar != std::string::npos && got.substr(bar + 1) == "OK", "a ring member's allreduce: " + got);
        links = got.substr(0, bar);
      }
      std::cout << "LINKS " << links << std::endl;
      auto blob = iogrid::task(make_blob).options({.node = argv[2]}).remote(std::uint64_t(12u << 20));
      for (int r = 1; r < size; ++r) {
        std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> box{blob};
        const auto path = iogrid::get(iogrid::task(pull_path).options({.node = argv[2 + r]}).remote(box), 120s);
        check(path != "corrupt", std::string("the bytes ") + argv[2 + r] + " pulled from " + argv[2]);
        std::cout << "PATH " << argv[2] << " " << argv[2 + r] << " " << path << std::endl;
      }
    }
    else if (scenario == "ring_pairs" && argc > 3) {
      // A two-member ring group for every pair of the nodes named, all at once (half a CPU each: no pair waits
      // for another's to end): prints "PAIR A B 0>1 path, 1>0 path" (rank 0 on A).
      const std::uint64_t n = 1u << 18;
      std::vector<std::pair<std::string, std::string>> pairs;
      std::vector<std::array<iogrid::ObjectRef<std::string>, 2>> members;
      for (int a = 2; a < argc; ++a)
        for (int b = a + 1; b < argc; ++b) {
          const std::string group = std::string("pair-") + argv[a] + "-" + argv[b];
          pairs.emplace_back(argv[a], argv[b]);
          members.push_back({iogrid::task(ring_member).options({.num_cpus = 0.5, .node = argv[a]}).remote(group, 0, 2, n),
                             iogrid::task(ring_member).options({.num_cpus = 0.5, .node = argv[b]}).remote(group, 1, 2, n)});
        }
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        std::string links;
        for (auto& m : members[i]) {
          const auto got = iogrid::get(m, 300s);
          const auto bar = got.rfind('|');
          check(bar != std::string::npos && got.substr(bar + 1) == "OK", "pair " + pairs[i].first + "-" + pairs[i].second + ": " + got);
          links = got.substr(0, bar);
        }
        std::cout << "PAIR " << pairs[i].first << " " << pairs[i].second << " " << links << std::endl;
      }
    }
    else if (scenario == "each_node" && argc > 2) {
      // One task on each node named, each run by a worker there that connects to this driver.
      for (int i = 2; i < argc; ++i) {
        const auto ran = iogrid::get(iogrid::task(where).options({.node = argv[i]}).remote(), 120s);
        check(ran == argv[i], std::string("the task pinned to ") + argv[i] + " ran there (" + ran + ")");
      }
    }
    else if (scenario == "nested_across" && argc > 3) {
      // A task on node argv[2] fans out to tasks pinned on node argv[3].
      auto r = iogrid::get(iogrid::task(fan_to).options({.node = argv[2]}).remote(std::string(argv[3]), 6L), 180s);
      check(r == std::string("all on ") + argv[3], "the nested tasks ran on " + std::string(argv[3]) + " (" + r + ")");
    }
    else if (scenario == "crash") crashing();
    else if (scenario == "nested") nested();
    else if (scenario == "wait_for_node" && argc > 2) {
      // Work pinned to a node that is not there yet is refused; once the node joins, the same request runs.
      const std::string name = argv[2];
      bool refused = false, ran = false;
      const auto until = std::chrono::steady_clock::now() + 60s;
      while (!ran && std::chrono::steady_clock::now() < until) {
        try {
          // Once accepted, it waits for the node to fetch the job's code and start a worker (a 126 MB
          // executable under ASan on a busy machine takes a while).
          auto where_ran = iogrid::get(iogrid::task(where).options({.node = name, .max_retries = 0}).remote(), 60s);
          std::cout << "RAN ON " << where_ran << std::endl;
          ran = true;
        } catch (const iogrid::InfeasibleError& e) {
          if (!refused) std::cout << "REFUSED: " << e.what() << std::endl;
          refused = true;
          std::this_thread::sleep_for(200ms);
        }
      }
      check(ran, "the node's work ran once it joined");
      check(refused, "the request was refused before the node joined");
    }
    else if (scenario == "burn" && argc > 3) {
      // N tasks of a tenth of a CPU each, all at once: every core of the machine busy with user work.
      const double seconds = std::atof(argv[2]);
      const int n = std::atoi(argv[3]);
      std::vector<iogrid::ObjectRef<long>> refs;
      for (int i = 0; i < n; ++i) refs.push_back(iogrid::task(burn).options({.num_cpus = 0.1}).remote(seconds));
      std::cout << "burning" << std::endl;
      long done = 0;
      for (auto& r : refs) done += iogrid::get(r, std::chrono::seconds(static_cast<long>(seconds) + 120));
      check(done == n, "every burning task finished");
    }
    else if (scenario == "misbehave") {
      // A job's own failures: tasks that throw, tasks that kill their worker process, a request no node can
      // hold, and a flood of nested work. None of it is the providers' doing.
      std::vector<iogrid::ObjectRef<int>> throwing;
      for (int i = 0; i < 1000; ++i) throwing.push_back(iogrid::task(fail_with).options({.max_retries = 0}).remote(std::string("mine")));
      int failed = 0;
      for (auto& r : throwing) {
        try {
          iogrid::get(r, 120s);
        } catch (const iogrid::TaskError&) {
          ++failed;
        }
      }
      check(failed == 1000, "the 1,000 throwing tasks failed");
      for (int i = 0; i < 5; ++i) {
        try {
          iogrid::get(iogrid::task(crash).options({.max_retries = 0}).remote(i), 60s);
        } catch (const iogrid::TaskError&) {
        }
      }
      try {
        iogrid::get(iogrid::task(where).options({.num_cpus = 64}).remote(), 30s);
      } catch (const iogrid::InfeasibleError&) {
      }
      check(iogrid::get(iogrid::task(tree).remote(12, true), 120s) == 4095, "the nested flood finished");
    }
    else if (scenario == "deep") {
      const int d = argc > 2 ? std::atoi(argv[2]) : 12;
      const bool alternate = argc > 3 && std::string(argv[3]) == "alternate";
      const long n = iogrid::get(iogrid::task(tree).remote(d, alternate), 120s);
      check(n == (1L << d) - 1, "a recursive tree of depth " + std::to_string(d) + " counts its " + std::to_string(n) + " tasks");
    }
    else if (scenario == "refs") refs_in_values();
    else if (scenario == "workloads") workloads();
    else if (scenario == "logs") {
      std::cout << "driver says hi" << std::endl;
      check(iogrid::get(iogrid::task(shout).remote(std::string("hello from a worker")), 60s) == 1, "the shouting task ran");
    }
    else if (scenario == "lineage") lineage(argc > 2 ? std::stoull(argv[2]) : (8u << 20));
    else if (scenario == "objects") objects(argc > 2 ? std::stoull(argv[2]) : (8u << 20));
    else if (scenario == "where_gpu") {
      // N one-GPU tasks at once; prints the nodes they ran on ("NODES n1,n2").
      int n = argc > 2 ? std::atoi(argv[2]) : 6;
      std::vector<iogrid::ObjectRef<std::string>> refs;
      for (int i = 0; i < n; ++i) refs.push_back(iogrid::task(where).options({.num_gpus = 1}).remote());
      std::set<std::string> nodes;
      for (auto& r : refs) nodes.insert(iogrid::get(r, 60s));
      std::string list;
      for (const auto& x : nodes) list += (list.empty() ? "" : ",") + x;
      std::cout << "NODES " << list << std::endl;
    }
    else if (scenario == "kv_put" && argc > 3) iogrid::kv_put(argv[2], argv[3]);
    else if (scenario == "kv_get" && argc > 2) {
      auto v = iogrid::kv_get(argv[2]);
      check(v.has_value(), std::string("key ") + argv[2] + " is in the head's store");
      std::cout << "VALUE=" << v.value_or("") << std::endl;
    }
    else {
      std::cout << "unknown scenario " << scenario << std::endl;
      return 2;
    }
  } catch (const std::exception& e) {
    std::cout << "FAILED: unexpected exception: " << e.what() << std::endl;
    ++failures;
  }
  iogrid::shutdown();
  if (failures) return 1;
  std::cout << "OK" << std::endl;
  return 0;
}
