// The head core's rules with a fake clock and a recording shell: health checking, blame, charging, queues,
// jobs, reservations, verification and the state a restarted head keeps.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "fake_head.hpp"
#include "runtime/transport/liveness.hpp"
#include "gpu/verify/challenge.hpp"
#include "scheduler/reputation.hpp"

using namespace std::chrono_literals;
using iogrid::sched::test::make_node;
using iogrid::test::FakeHead;
namespace head = iogrid::runtime::head;
namespace sched = iogrid::sched;

namespace {

sched::Node priced_gpu_node(const std::string& name, int gpus, double price) {
  auto n = make_node(name, 8, gpus);
  n.price_per_gpu_hour = price;
  return n;
}

std::filesystem::path scratch(const std::string& what) {
  std::random_device rd;
  auto d = std::filesystem::temp_directory_path() / ("iogrid-head-test-" + what + "-" + std::to_string(rd()));
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("a node silent past the timeout is dropped, its leases are refused, charged and blamed on it", "[head]") {
  head::HeadConfig cfg;
  cfg.node_timeout = 2500ms;
  FakeHead h(cfg);
  auto n = h.node(priced_gpu_node("gpu", 2, 3.6));
  auto job = h.driver(7);
  REQUIRE(h.core->request_lease(7, 100, FakeHead::gpus(1)));
  REQUIRE(h.events.started.size() == 1);
  CHECK(h.events.started[0].node == n);
  CHECK(h.events.started[0].grant.job == job);
  CHECK(h.events.started[0].grant.owner_lease == 100);

  // Heartbeats keep it: 2 s, a heartbeat, 2 s more is still within the timeout (the head checks every 100 ms).
  h.run_for(2000ms);
  h.core->heartbeat(n, {}, {});
  h.run_for(2000ms);
  CHECK(h.events.dropped.empty());

  // Silence past the timeout: the shell is asked to drop it, and its connection's end kills it.
  h.run_for(600ms);
  REQUIRE(h.events.dropped.size() == 1);
  CHECK(h.events.dropped[0].second == "no heartbeat for 2600 ms");
  const double before = h.reputation(n);
  h.core->node_lost(n, h.events.dropped[0].second);
  CHECK_FALSE(h.alive(n));
  REQUIRE(h.events.deaths.size() == 1);
  CHECK(h.events.deaths[0] == "gpu: no heartbeat for 2600 ms");
  REQUIRE(h.events.refused.size() == 1);
  CHECK(h.events.refused[0].owner == 7);
  CHECK(h.events.refused[0].owner_lease == 100);
  CHECK(h.events.refused[0].why == head::LeaseRefusal::ask_again);
  // Blame: the death, and the lease lost with it.
  const double expected = sched::update_reputation(sched::update_reputation(before, sched::Outcome::node_died),
                                                   sched::Outcome::task_failed);
  CHECK(h.reputation(n) == Approx(expected));
  // Charged for the 4.6 s it held one GPU at 3.6 per GPU-hour.
  CHECK(h.core->ledger().total("job", job).gpu_seconds == Approx(4.6));
  CHECK(h.core->ledger().total("node", "gpu").cost == Approx(4.6 * 3.6 / 3600));
  CHECK(h.core->jobs().all().at(job).active_leases == 0);
  // Dropped once: a dead node is not silent any more.
  h.run_for(10s);
  CHECK(h.events.dropped.size() == 1);
}

TEST_CASE("nodes inside the head's process are never silent", "[head]") {
  FakeHead h;
  auto n = h.node(make_node("local", 4), head::Liveness::in_process);
  h.time.advance(1h);
  h.core->tick();
  CHECK(h.events.dropped.empty());
  CHECK(h.alive(n));
}

TEST_CASE("a lease that ends normally is charged and credits its node, a job's failure never touches a node", "[head]") {
  FakeHead h;
  auto n = h.node(priced_gpu_node("gpu", 2, 2.0));
  auto n_start = h.reputation(n);
  auto job = h.driver(1);
  h.core->request_lease(1, 5, FakeHead::gpus(2));
  REQUIRE(h.events.started.size() == 1);
  const auto lease = h.events.started[0].grant.lease;
  CHECK(h.events.started[0].grant.alloc.lease == lease);
  h.time.advance(30min);
  h.core->lease_ended(lease);
  CHECK(h.core->ledger().total("job", job).gpu_seconds == Approx(2 * 1800.0));
  CHECK(h.core->ledger().total("job", job).cost == Approx(2.0));  // 1 GPU-hour at 2.0
  CHECK(h.reputation(n) == Approx(sched::update_reputation(n_start, sched::Outcome::task_succeeded)));
  // The owner hears that the lease ended (it asks again only if its worker never attached).
  REQUIRE(h.events.refused.size() == 1);
  CHECK(h.events.refused[0].why == head::LeaseRefusal::ask_again);
  CHECK(h.events.refused[0].reason == "the lease ended on its node");

  // The driver vanishes: the job fails, the node's reputation does not move.
  const double rep = h.reputation(n);
  h.core->owner_gone(1, "connection reset");
  CHECK(h.core->jobs().all().at(job).state == head::JobState::failed);
  CHECK(h.reputation(n) == rep);
  // CPU-only work costs nothing.
  auto job2 = h.driver(2);
  h.core->request_lease(2, 1, FakeHead::cpus(1));
  h.time.advance(1h);
  h.core->lease_ended(h.events.started.back().grant.lease);
  CHECK(h.core->ledger().total("job", job2).cost == 0);
}

TEST_CASE("every healthy hour of uptime counts once for the node's reputation", "[head]") {
  FakeHead h;
  auto node = make_node("n", 2);
  node.reputation = 0.5;
  auto n = h.node(node);
  for (int minute = 0; minute < 59; ++minute) {
    h.time.advance(1min);
    h.core->heartbeat(n, {}, {});
    h.core->tick();
  }
  CHECK(h.reputation(n) == 0.5);
  h.time.advance(1min);
  h.core->heartbeat(n, {}, {});
  h.core->tick();
  CHECK(h.reputation(n) == Approx(sched::update_reputation(0.5, sched::Outcome::uptime_hour)));
}

TEST_CASE("requests that can never run are refused naming the closest node, others wait for capacity", "[head]") {
  FakeHead h;
  h.node(make_node("small", 2));
  h.driver(1);
  h.core->request_lease(1, 1, FakeHead::cpus(16));
  REQUIRE(h.events.refused.size() == 1);
  CHECK(h.events.refused[0].why == head::LeaseRefusal::never_fits);
  CHECK_THAT(h.events.refused[0].reason, Catch::Contains("no node can ever satisfy") && Catch::Contains("closest node 'small'"));
  CHECK(h.core->stats().leases_infeasible == 1);

  // Two leases fill the node; the third waits and is granted when one ends.
  h.core->request_lease(1, 2, FakeHead::cpus(1));
  h.core->request_lease(1, 3, FakeHead::cpus(1));
  h.core->request_lease(1, 4, FakeHead::cpus(1));
  REQUIRE(h.events.started.size() == 2);
  CHECK(h.core->leases().pending() == 1);
  CHECK(h.core->stats().leases_queued == 1);
  h.core->lease_ended(h.events.started[0].grant.lease);
  REQUIRE(h.events.started.size() == 3);
  CHECK(h.events.started[2].grant.owner_lease == 4);
  CHECK(h.core->leases().pending() == 0);
  // An unknown owner is the shell's problem (it closes the connection).
  CHECK_FALSE(h.core->request_lease(99, 1, FakeHead::cpus(1)));
}

TEST_CASE("a worker parked in get lends its CPUs to queued work and takes them back", "[head]") {
  FakeHead h;
  auto n = h.node(make_node("n", 1));
  h.driver(1);
  h.core->request_lease(1, 1, FakeHead::cpus(1));
  h.core->request_lease(1, 2, FakeHead::cpus(1));
  REQUIRE(h.events.started.size() == 1);
  h.core->worker_blocked(h.events.started[0].grant.lease);
  REQUIRE(h.events.started.size() == 2);  // the nested task runs on the lent CPU
  h.core->worker_resumed(h.events.started[0].grant.lease);
  CHECK(h.core->scheduler().cluster().node(n).available.cpus == -sched::kOne);  // briefly over-committed
  // A dead node lends nothing.
  h.core->node_lost(n, "gone");
  h.core->worker_blocked(h.events.started[0].grant.lease);
  CHECK(h.events.started.size() == 2);
}

TEST_CASE("a job ends once, its queued requests go, and its other owners hear of it", "[head]") {
  FakeHead h;
  h.node(make_node("n", 1));
  auto job = h.driver(1);
  head::Registration worker;
  worker.parent_job = job;
  REQUIRE(h.core->register_owner(2, worker).ok);  // a worker submitting nested tasks
  h.core->request_lease(1, 1, FakeHead::cpus(1));
  h.core->request_lease(2, 2, FakeHead::cpus(1));  // queued behind the first
  CHECK(h.core->leases().pending() == 1);
  h.core->driver_finished(1, "");
  CHECK(h.core->jobs().all().at(job).state == head::JobState::finished);
  CHECK(h.core->leases().pending() == 0);
  REQUIRE(h.events.ended.size() == 1);
  CHECK(h.events.ended[0].second == std::vector<head::OwnerId>{2});  // not the driver that finished it
  // Ended jobs stay ended, and get no grants.
  CHECK_FALSE(h.core->stop_job(job + "-nope", "op"));
  CHECK(h.core->stop_job(job, "op"));
  CHECK(h.core->jobs().all().at(job).state == head::JobState::finished);
  CHECK(h.events.ended.size() == 1);
  // An operator's stop tells the driver too.
  auto job2 = h.driver(3);
  CHECK(h.core->stop_job(job2, "op"));
  REQUIRE(h.events.ended.size() == 2);
  CHECK(h.events.ended[1].second == std::vector<head::OwnerId>{3});
  // Unknown jobs cannot be joined or resumed.
  head::Registration stray;
  stray.parent_job = "job-77";
  CHECK_FALSE(h.core->register_owner(4, stray).ok);
  head::Registration back;
  back.resume_job = job;
  auto r = h.core->register_owner(4, back);
  CHECK_FALSE(r.ok);
  CHECK(r.error == "the job has finished");
}

TEST_CASE("a reservation that ends refuses its queued work and stops the jobs inside, not its creator", "[head]") {
  FakeHead h;
  h.node(priced_gpu_node("a", 2, 1.0));
  auto creator = h.driver(1);
  auto body = h.core->admin(1, 1, "driver", "cluster.create", R"({"gpus": 1, "duration_s": 60})");
  REQUIRE(body);
  const auto id = nlohmann::json::parse(*body)["id"].get<std::string>();
  const auto ticket = head::parse_reservation(id);
  auto guest = h.driver(2);
  auto in_cluster = FakeHead::gpus(1);
  in_cluster.reservation = ticket;
  h.core->request_lease(1, 1, in_cluster);
  h.core->request_lease(2, 2, in_cluster);  // the bundle is taken: waits
  REQUIRE(h.events.started.size() == 1);
  CHECK(h.core->leases().pending() == 1);
  h.time.advance(61s);
  h.core->tick();
  CHECK(h.core->leases().pending() == 0);
  REQUIRE(h.events.refused.size() == 1);
  CHECK(h.events.refused[0].why == head::LeaseRefusal::never_fits);
  CHECK(h.events.refused[0].reason == "iogrid: cluster " + id + " was expired");
  CHECK(h.core->jobs().all().at(creator).state == head::JobState::running);
  CHECK(h.core->jobs().all().at(guest).state == head::JobState::stopped);
  // Charged for the minute it was held (the reservation pays, whether used or not).
  CHECK(h.core->ledger().total("reservation", id).gpu_seconds == Approx(61.0));
}

TEST_CASE("a node's GPUs found unverified are challenged at join, the verdict moves its reputation", "[head]") {
  head::HeadConfig cfg;
  cfg.verify_size = 64;  // a small GEMM keeps the test fast
  FakeHead h(cfg);
  auto node = make_node("fresh", 4, 1);
  node.gpus[0].verified = false;
  node.gpus[0].model = "TestGPU";  // no reference throughput: a correct answer verifies
  node.reputation = 0.5;
  auto n = h.node(node);
  REQUIRE(h.events.challenges.size() == 1);
  const auto c = h.events.challenges[0];
  CHECK(c.node == n);
  CHECK(c.challenge.n == 64);
  auto commit = [&](const iogrid::gpu::verify::Prover& p) {
    const auto& root = p.commitment().root;
    h.core->verify_committed(n, c.id, std::vector<std::uint8_t>(root.begin(), root.end()), p.commitment().seconds, "");
  };
  SECTION("a correct answer verifies the GPU") {
    auto p = iogrid::gpu::verify::run_challenge(c.challenge, -1);  // the honest node, on the CPU
    commit(*p);
    REQUIRE(h.events.rows_asked.size() == 1);
    CHECK(h.events.rows_asked[0].first == c.id);
    h.core->verify_opened(n, c.id, p->open(h.events.rows_asked[0].second));
    const auto& gpu = h.core->scheduler().cluster().node(n).gpus[0];
    CHECK(gpu.verified);
    CHECK(gpu.tflops > 0);
    CHECK(h.reputation(n) == Approx(sched::update_reputation(0.5, sched::Outcome::verification_passed)));
    CHECK_THAT(h.core->nodes()[n].verification, Catch::StartsWith("GPU 0 (TestGPU): answer correct"));
  }
  SECTION("a wrong answer caps the node's reputation and leaves the GPU unverified") {
    auto other = c.challenge;
    other.seed += 1;  // the product of other matrices
    auto p = iogrid::gpu::verify::run_challenge(other, -1);
    commit(*p);
    REQUIRE(h.events.rows_asked.size() == 1);
    h.core->verify_opened(n, c.id, p->open(h.events.rows_asked[0].second));
    CHECK_FALSE(h.core->scheduler().cluster().node(n).gpus[0].verified);
    CHECK(h.reputation(n) <= 0.1);
    CHECK_THAT(h.core->nodes()[n].verification, Catch::Contains("unverified, wrong answer"));
  }
  SECTION("a node that cannot run it is unverified, and a stranger cannot answer for it") {
    h.core->verify_committed(n + 1, c.id, {}, 0, "no GPU");  // not its node: ignored
    CHECK(h.core->nodes()[n].verification.empty());
    h.core->verify_committed(n, c.id, {}, 0, "cuda error 100");
    CHECK_THAT(h.core->nodes()[n].verification, Catch::Contains("could not run the challenge: cuda error 100"));
    CHECK(h.reputation(n) <= 0.1);
  }
}

TEST_CASE("an operator's verify answers once every GPU asked has a verdict", "[head]") {
  head::HeadConfig cfg;
  cfg.verify_size = 64;
  FakeHead h(cfg);
  auto a = h.node(make_node("a", 2, 1));
  auto b = h.node(make_node("b", 2, 1));
  CHECK(h.events.challenges.empty());  // declared GPUs are trusted until asked
  CHECK_FALSE(h.core->admin(9, 33, "cli", "verify", R"({"size": 64})"));
  REQUIRE(h.events.challenges.size() == 2);
  for (auto& c : h.events.challenges) h.core->verify_committed(c.node, c.id, {}, 0, "busy");
  REQUIRE(h.events.answers.size() == 1);
  auto results = nlohmann::json::parse(h.events.answers[0].substr(3));
  CHECK(results.size() == 2);
  CHECK_THROWS_WITH(h.core->admin(9, 34, "cli", "verify", R"({"node": "nobody"})"), Catch::Contains("no live node named 'nobody'"));
  CHECK_THROWS_WITH(h.core->admin(9, 35, "cli", "verify", R"({"size": 4})"), Catch::Contains("between 16 and 32768"));
  (void)a;
  (void)b;
}

TEST_CASE("a restarted head keeps nodes, jobs, keys and the ledger, a job whose driver never returns fails", "[head]") {
  const auto dir = scratch("restart");
  head::HeadConfig cfg;
  cfg.state_dir = dir.string();
  cfg.driver_reconnect = 30s;
  std::string job;
  std::uint64_t lease = 0;
  {
    FakeHead h(cfg);
    h.node(priced_gpu_node("gpu", 1, 1.0));
    job = h.driver(1);
    h.core->kv_put("k", "v");
    h.core->request_lease(1, 1, FakeHead::gpus(1));
    lease = h.events.started.at(0).grant.lease;
    h.time.advance(1h);
    h.core->lease_ended(lease);
    h.core->tick();  // writes the ledger
  }
  FakeHead h(cfg);
  CHECK(h.core->kv_get("k") == std::optional<std::string>("v"));
  CHECK(h.core->ledger().total("job", job).gpu_seconds == Approx(3600));
  REQUIRE(h.core->scheduler().cluster().size() == 1);
  CHECK_FALSE(h.alive(0));  // until it rejoins
  // Requests nothing alive could hold wait while nodes rejoin, instead of failing.
  auto next = h.driver(2);
  CHECK(next != job);  // ids are never reused
  h.core->request_lease(2, 1, FakeHead::gpus(1));
  CHECK(h.events.refused.empty());
  // The node rejoins under its old identity.
  head::Join back;
  back.node = priced_gpu_node("gpu", 1, 1.0);
  back.host = "10.0.0.1";
  back.rejoin = true;
  back.previous_index = 0;
  back.previous_name = "gpu";
  auto joined = h.core->join(back);
  CHECK(joined.rejoined);
  CHECK(joined.index == 0);
  h.core->admit(0);
  REQUIRE(h.events.started.size() == 1);
  CHECK(h.events.started[0].grant.lease > lease);
  // The restored job's driver never comes back.
  h.time.advance(31s);
  h.core->tick();
  CHECK(h.core->jobs().all().at(job).state == head::JobState::failed);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the node table names nodes uniquely and keeps one verdict line per GPU", "[head]") {
  sched::ClusterState state;
  head::NodeTable t(state, 1000ms);
  auto now = head::Clock::now();
  auto a = t.add(make_node("gpu", 1), {}, now);
  auto b = t.add(make_node("gpu", 1), {}, now);
  auto c = t.add(make_node("", 1), {}, now);
  CHECK(state.node(a).name == "gpu");
  CHECK(state.node(b).name == "gpu-2");
  CHECK(state.node(c).name == "node");
  CHECK(t.find("gpu-2") == long(b));
  REQUIRE(t.mark_dead(a));
  CHECK_FALSE(t.mark_dead(a));
  CHECK(state.node(t.add(make_node("gpu", 1), {}, now)).name == "gpu");  // the name is free again
  t.set_verification(b, 0, "GPU 0 (A100): first");
  t.set_verification(b, 1, "GPU 1 (A100): other");
  t.set_verification(b, 0, "GPU 0 (A100): second");
  CHECK(t[b].verification == "GPU 1 (A100): other\nGPU 0 (A100): second");
}

TEST_CASE("a node that comes back as a new daemon under its old name takes work pinned to that name", "[head]") {
  FakeHead h;
  auto old = h.node(make_node("n", 2));
  h.node(make_node("other", 2));
  h.driver(1);
  h.core->node_lost(old, "killed");
  auto fresh = h.node(make_node("n", 2));
  CHECK(fresh != old);
  CHECK(h.core->scheduler().cluster().node(fresh).name == "n");
  auto pinned = FakeHead::cpus(1);
  pinned.node = "n";
  h.core->request_lease(1, 7, pinned);
  REQUIRE(h.events.started.size() == 1);
  CHECK(h.events.started[0].node == fresh);
  CHECK(h.events.refused.empty());
}

// Ticks of 100 ms until the head drops a node (at most 100).
int ticks_until_dropped(FakeHead& h) {
  int ticks = 0;
  while (h.events.dropped.empty() && ticks < 100) {
    h.time.advance(100ms);
    h.core->tick();
    ++ticks;
  }
  return ticks;
}

TEST_CASE("the head's own stall is not held against its nodes", "[head]") {
  head::HeadConfig cfg;
  cfg.node_timeout = 2500ms;
  FakeHead h(cfg);
  auto n = h.node(make_node("n", 2));
  // Ticks every 100 ms with heartbeats: alive.
  for (int i = 0; i < 20; ++i) {
    h.time.advance(100ms);
    if (i % 5 == 0) h.core->heartbeat(n, {}, {});
    h.core->tick();
  }
  CHECK(h.events.dropped.empty());
  // The head is stuck for 6 s in one call (a large upload, a busy machine): its next check does not count it.
  h.time.advance(6s);
  h.core->tick();
  CHECK(h.events.dropped.empty());
  // But a node that stays silent while the head is checking is still dropped after the timeout: its last
  // heartbeat was 0.4 s before the stall, so 2.1 s more of checked silence.
  const int ticks = ticks_until_dropped(h);
  REQUIRE(h.events.dropped.size() == 1);
  CHECK(h.events.dropped[0].first == n);
  CHECK(ticks >= 20);
  CHECK(ticks <= 22);
}

TEST_CASE("a node heard on its liveness channel is not dropped while its connection is quiet", "[head]") {
  head::HeadConfig cfg;
  cfg.node_timeout = 2500ms;
  FakeHead h(cfg);
  auto n = h.node(make_node("n", 2));
  std::optional<head::Clock::time_point> heard;
  h.core->set_heard([&](std::uint32_t node) { return node == n ? heard : std::nullopt; });
  // No heartbeat on the connection for 10 s, but a liveness beat every 250 ms: alive throughout.
  for (int i = 0; i < 100; ++i) {
    h.time.advance(100ms);
    if (i % 3 == 0) heard = h.time.t;
    h.core->tick();
  }
  CHECK(h.events.dropped.empty());
  // Both channels quiet (the daemon stopped): dropped once the timeout has passed since the last beat.
  const int ticks = ticks_until_dropped(h);
  REQUIRE(h.events.dropped.size() == 1);
  CHECK(h.events.dropped[0].first == n);
  CHECK(ticks >= 23);
  CHECK(ticks <= 27);
}

TEST_CASE("liveness beats carry the node and its loop age, and only the cluster's token makes them", "[head]") {
  using namespace iogrid::runtime::transport;
  auto bytes = encode_beat("secret", LivenessBeat{7, 42, 130});
  auto b = decode_beat("secret", bytes);
  REQUIRE(b);
  CHECK(b->node == 7);
  CHECK(b->seq == 42);
  CHECK(b->loop_age_ms == 130);
  CHECK_FALSE(decode_beat("other", bytes));
  auto forged = bytes;
  forged[4] = 8;  // another node's index under the same MAC
  CHECK_FALSE(decode_beat("secret", forged));
  CHECK_FALSE(decode_beat("secret", bytes.substr(1)));
  // Over a real socket: the sender's beats reach the listener; a loop older than the listener accepts does not count.
  LivenessListener l("secret", "127.0.0.1", 0);
  CHECK_FALSE(l.heard(3, 30s));
  LivenessSender s("secret", "127.0.0.1", l.port(), 20ms);
  s.set_node(3);
  s.loop_ticked();
  bool got = false;
  for (int i = 0; i < 200 && !got; ++i) {
    std::this_thread::sleep_for(10ms);
    s.loop_ticked();
    got = l.heard(3, 30s).has_value();
  }
  CHECK(got);
  CHECK_FALSE(l.heard(4, 30s));
  LivenessSender wrong("other", "127.0.0.1", l.port(), 20ms);
  wrong.set_node(5);
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(l.heard(5, 30s));
  // A node whose event loop stopped ticking (stuck) is heard, but not as alive within a short bound.
  LivenessSender stuck("secret", "127.0.0.1", l.port(), 20ms);
  stuck.set_node(6);
  std::this_thread::sleep_for(400ms);
  CHECK(l.heard(6, 30s).has_value());
  CHECK_FALSE(l.heard(6, 100ms).has_value());
}

TEST_CASE("a job holding the cluster while another waits yields a lease once it has run its quantum", "[head]") {
  head::HeadConfig config;
  config.yield_after = std::chrono::seconds(2);
  FakeHead h(config);
  h.node(make_node("n", 1));
  h.driver(1);
  h.driver(2);
  h.core->request_lease(1, 1, FakeHead::cpus(1));
  REQUIRE(h.events.started.size() == 1);
  h.core->request_lease(1, 2, FakeHead::cpus(1));  // job 1 has more work
  h.core->request_lease(2, 1, FakeHead::cpus(1));  // job 2 waits with nothing
  h.run_for(std::chrono::milliseconds(1500));
  CHECK(h.events.yields.empty());  // the lease is younger than its quantum
  h.run_for(std::chrono::milliseconds(1000));
  REQUIRE(h.events.yields.size() == 1);
  CHECK(h.events.yields[0] == std::make_pair(head::OwnerId{1}, std::uint64_t{1}));
  CHECK(h.core->stats().leases_yielded == 1);
  h.run_for(std::chrono::seconds(3));
  CHECK(h.events.yields.size() == 1);  // asked once
  // The lease ends at its owner's next task boundary: the waiting job comes first (it holds less).
  h.core->lease_ended(h.events.started[0].grant.lease);
  REQUIRE(h.events.started.size() == 2);
  CHECK(h.events.started[1].grant.owner == 2);
  // Then job 1 waits with nothing while job 2 holds the node: the turn comes back after the quantum.
  h.run_for(std::chrono::milliseconds(2500));
  REQUIRE(h.events.yields.size() == 2);
  CHECK(h.events.yields[1] == std::make_pair(head::OwnerId{2}, std::uint64_t{1}));
}

TEST_CASE("posted prices bind: a provider asking more than the request pays gets no work, leases pay the posted price x the tier",
          "[head][pricing]") {
  head::HeadConfig config;
  config.pricing_round = std::chrono::minutes(1);
  FakeHead h(config);
  const auto c = h.node(priced_gpu_node("cheap", 1, 2.0));
  const auto d = h.node(priced_gpu_node("dear", 1, 2.5));
  const auto e = h.node(priced_gpu_node("dearer", 1, 4.0));
  // The A100/any market opened at its first provider's ask (2.0); idle, it stays there (never below the lowest ask).
  h.run_for(200ms);
  for (auto n : {c, d, e}) CHECK(h.core->scheduler().cluster().node(n).posted_price == Approx(2.0));
  auto job = h.driver(1);
  // Standard pays 2.0: only 'cheap' asks that little. A second standard request waits.
  h.core->request_lease(1, 1, FakeHead::gpus(1));
  REQUIRE(h.events.started.size() == 1);
  CHECK(h.events.started[0].grant.alloc.node == c);
  h.core->request_lease(1, 2, FakeHead::gpus(1));
  CHECK(h.events.started.size() == 1);
  // Urgent pays 1.5 x 2.0 = 3.0: 'dear' (asking 2.5) takes it, 'dearer' (4.0) does not; a ceiling below 3.0
  // waits (the price may fall) rather than being refused.
  auto urgent = FakeHead::gpus(1);
  urgent.tier = sched::Tier::urgent;
  urgent.max_price = 2.9;
  const auto refused = h.events.refused.size();
  h.core->request_lease(1, 3, urgent);
  CHECK(h.events.started.size() == 1);
  CHECK(h.events.refused.size() == refused);
  urgent.max_price = 0;
  h.core->request_lease(1, 4, urgent);
  REQUIRE(h.events.started.size() == 2);
  CHECK(h.events.started[1].grant.alloc.node == d);
  h.time.advance(1h);
  const auto first = h.events.started[0].grant.lease, second = h.events.started[1].grant.lease;
  h.core->lease_ended(first);  // (the waiting standard request takes 'cheap' then: not ended here)
  h.core->lease_ended(second);
  // One GPU-hour at 2.0 (standard) and one at 3.0 (urgent): the posted price x the tier, not 'dear''s ask.
  CHECK(h.core->ledger().total("job", job).cost == Approx(2.0 + 3.0));
  CHECK(h.core->ledger().total("node", "dearer").gpu_seconds == 0);
  // A ceiling below every ask can never be met: refused at once, naming the price.
  auto hopeless = FakeHead::gpus(1);
  hopeless.max_price = 1.0;
  h.core->request_lease(1, 5, hopeless);
  REQUIRE(h.events.refused.size() > refused);
  CHECK(h.events.refused.back().reason.find("above the request's ceiling") != std::string::npos);
}

TEST_CASE("a spot check's report moves the reputation of the providers it names, only if they ran the job's work",
          "[head][spot_check]") {
  FakeHead h;
  const auto a = h.node(priced_gpu_node("a", 1, 1.0));
  const auto b = h.node(priced_gpu_node("b", 1, 1.0));
  const auto c = h.node(priced_gpu_node("c", 1, 1.0));
  const auto idle = h.node(priced_gpu_node("idle", 1, 1.0));
  h.driver(1);
  for (std::uint64_t l = 1; l <= 3; ++l) h.core->request_lease(1, l, FakeHead::gpus(1));
  REQUIRE(h.events.started.size() == 3);  // a, b and c: each ran some of the job's work
  auto report = [&](const std::string& disagreed, std::vector<std::string> agreed) {
    const nlohmann::json rec{{"ts_ms", 1}, {"task", "square"}, {"verdict", "settled"}, {"agreed", agreed},
                             {"disagreed", disagreed}, {"providers", nlohmann::json::array()}, {"why", ""}, {"extra_runs", 2}};
    h.core->task_report(1, nlohmann::json{{"checks", {rec}}}.dump());
  };
  // Naming a node that ran none of the job's work: ignored.
  report("idle", {"a", "b"});
  CHECK(h.reputation(idle) == 1.0);
  CHECK(h.reputation(a) == 1.0);
  report("c", {"a", "b"});
  CHECK(h.reputation(c) == Approx(0.1));
  CHECK(h.reputation(a) == 1.0);  // already at the top; check_passed moves it towards 1
  CHECK(h.core->check_tallies().at("c").failed == 1);
  CHECK(h.core->check_tallies().at("a").passed == 1);
  CHECK(h.core->check_tallies().count("idle") == 0);
  // A malformed record is ignored, and the head goes on.
  h.core->task_report(1, R"({"checks": [{"task": 3}]})");
  CHECK(h.core->check_verdicts().at("settled") == 1);
  (void)b;
}

TEST_CASE("an unpriced node is in no market: its GPU work is free, whatever the pricing rounds do", "[head][pricing]") {
  head::HeadConfig config;
  config.pricing_round = std::chrono::minutes(1);
  FakeHead h(config);
  const auto n = h.node(priced_gpu_node("own", 2, 0.0));
  auto job = h.driver(1);
  h.run_for(std::chrono::minutes(3));  // three rounds
  CHECK(h.core->scheduler().cluster().node(n).posted_price == 0);
  auto capped = FakeHead::gpus(1);
  capped.max_price = 0.5;  // any ceiling is met: it pays nothing
  h.core->request_lease(1, 1, capped);
  REQUIRE(h.events.started.size() == 1);
  h.time.advance(1h);
  h.core->lease_ended(h.events.started[0].grant.lease);
  CHECK(h.core->ledger().total("job", job).cost == 0);
  const auto market = h.core->admin(1, 2, "driver", "market", "{}");
  REQUIRE(market);
  CHECK(nlohmann::json::parse(*market)["markets"].empty());
}
