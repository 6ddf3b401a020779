#include <catch2/catch.hpp>
#include <sstream>

#include "scheduler/replay.hpp"
#include "scheduler/trace.hpp"

using namespace iogrid::sched;

namespace {
std::chrono::steady_clock::time_point fake_clock() {
  static std::chrono::steady_clock::time_point t{};
  t += std::chrono::microseconds(10);  // every reading 10 µs later: latencies are exactly 0.01 ms
  return t;
}
}  // namespace

TEST_CASE("trace CSVs round-trip and the generator is reproducible", "[scheduler][trace]") {
  auto t = generate_trace(50, 300, 7);
  REQUIRE(t.nodes.size() == 50);
  REQUIRE(t.tasks.size() == 300);
  std::stringstream n, k;
  write_nodes_csv(n, t.nodes);
  write_tasks_csv(k, t.tasks);
  auto nodes = read_nodes_csv(n);
  auto tasks = read_tasks_csv(k);
  REQUIRE(nodes.size() == 50);
  REQUIRE(tasks.size() == 300);
  CHECK(nodes[3].sn == t.nodes[3].sn);
  CHECK(nodes[3].gpus == t.nodes[3].gpus);
  CHECK(nodes[3].model == t.nodes[3].model);
  CHECK(tasks[10].gpu_milli == t.tasks[10].gpu_milli);
  CHECK(tasks[10].creation_time == t.tasks[10].creation_time);
  auto again = generate_trace(50, 300, 7);
  CHECK(again.tasks[299].deletion_time == t.tasks[299].deletion_time);
  CHECK(generate_trace(50, 300, 8).tasks[299].deletion_time != t.tasks[299].deletion_time);
}

TEST_CASE("malformed traces name the line and column", "[scheduler][trace]") {
  std::stringstream missing("sn,cpu_milli,memory_mib,model\nn1,1000,1024,A100\n");
  CHECK_THROWS_WITH(read_nodes_csv(missing), Catch::Contains("line 1") && Catch::Contains("'gpu'"));
  std::stringstream bad("sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024,1,A100\nn2,lots,1024,1,A100\n");
  CHECK_THROWS_WITH(read_nodes_csv(bad), Catch::Contains("line 3") && Catch::Contains("cpu_milli"));
  std::stringstream frac("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time\nt,1,1,1,1500,,0,1\n");
  CHECK_THROWS_WITH(read_tasks_csv(frac), Catch::Contains("line 2"));
}

TEST_CASE("replay of a small trace gives the known placements, failures and fragmentation", "[scheduler][trace]") {
  std::stringstream n("sn,cpu_milli,memory_mib,gpu,model\na,8000,8192,1,A100\nb,8000,8192,1,A100\n");
  std::stringstream k(
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time\n"
      "t1,1000,0,1,500,,0,100\n"
      "t2,1000,0,1,500,,1,100\n"
      "t3,1000,0,1,1000,,2,100\n");
  auto nodes = read_nodes_csv(n);
  auto tasks = read_tasks_csv(k);
  // Best fit puts both halves on one GPU and the whole-GPU task on the other.
  auto pack = make_policy("pack");
  auto p = replay(nodes, tasks, *pack, 0, fake_clock);
  CHECK(p.placed == 3);
  CHECK(p.failed == 0);
  CHECK(p.final_allocated_gpu_ratio == Approx(1.0));
  CHECK(p.p99_ms == Approx(0.01));
  // Spread splits the halves over both GPUs, so the whole-GPU task finds no room: a third of the typical
  // work (the whole-GPU shape) cannot use the free halves.
  auto spread = make_policy("spread");
  auto s = replay(nodes, tasks, *spread, 0, fake_clock);
  CHECK(s.placed == 2);
  CHECK(s.failed == 1);
  CHECK(s.final_allocated_gpu_ratio == Approx(0.5));
  CHECK(s.final_fragmented_share == Approx(1.0 / 3.0));
}

TEST_CASE("tasks leave at their deletion time and free their GPUs", "[scheduler][trace]") {
  std::stringstream n("sn,cpu_milli,memory_mib,gpu,model\na,8000,8192,1,A100\n");
  std::stringstream k(
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time\n"
      "t1,1000,0,1,1000,,0,5\n"
      "t2,1000,0,1,1000,,3,9\n"
      "t3,1000,0,1,1000,,5,9\n");
  auto nodes = read_nodes_csv(n);
  auto tasks = read_tasks_csv(k);
  auto ff = make_policy("first-fit");
  auto r = replay(nodes, tasks, *ff, 0, fake_clock);
  CHECK(r.placed == 2);  // t2 finds the GPU busy; t3 arrives when t1 has left
  CHECK(r.failed == 1);
}

TEST_CASE("trace files as real traces come: optional columns optional, unknown ones ignored, quoting", "[scheduler][trace]") {
  // A pod file with only the five columns some public variants carry, and a node file without memory.
  std::stringstream k("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,4000,1024,1,460\np1,8000,2048,2,1000\np2,16000,0,0,0\n");
  auto tasks = read_tasks_csv(k);
  REQUIRE(tasks.size() == 3);
  CHECK(tasks[0].gpu_milli == 460);
  CHECK(tasks[0].gpu_spec.empty());
  CHECK(tasks[0].creation_time == 0);  // file order, one per time unit
  CHECK(tasks[2].creation_time == 2);
  CHECK(tasks[1].deletion_time == kNeverLeaves);  // no deletion time: it never leaves
  std::stringstream n("\xEF\xBB\xBFsn, cpu_milli ,gpu,model,owner\nn0,96000,8,V100M32,\"Lab, Inc.\"\nn1,64000,2,T4,x\n");
  auto nodes = read_nodes_csv(n);
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[0].cpu_milli == 96000);
  CHECK(nodes[0].memory_mib == kUnlimitedMemoryMib);  // no memory column: memory constrains nothing
  auto r = to_request(tasks[0]);
  CHECK(r.gpus == 460);
  // No names, gpu_milli absent (whole GPUs), quoted models, qos and price read, extra columns ignored.
  std::stringstream q("cpu_milli,num_gpu,gpu_spec,qos,pod_phase,max_price,creation_time\n1000,1,\"A100|H100\",LS,Running,2.5,7\n2000,0,,BE,Failed,,3\n");
  auto more = read_tasks_csv(q);
  REQUIRE(more.size() == 2);
  CHECK(more[0].creation_time == 3);  // sorted by creation time
  CHECK(more[1].name == "task-0");
  CHECK(more[1].gpu_milli == kOne);
  CHECK(more[1].qos == "LS");
  CHECK(more[1].max_price == Approx(2.5));
  CHECK(to_request(more[1]).gpu_models == std::vector<std::string>{"A100", "H100"});
  // What stays an error names the line and the column.
  std::stringstream none("name,memory_mib,num_gpu\nx,1,1\n");
  CHECK_THROWS_WITH(read_tasks_csv(none), Catch::Contains("line 1") && Catch::Contains("'cpu_milli'"));
  std::stringstream multi("cpu_milli,num_gpu,gpu_milli\n1000,2,500\n");
  CHECK_THROWS_WITH(read_tasks_csv(multi), Catch::Contains("line 2") && Catch::Contains("gpu_milli"));
  std::stringstream open_quote("cpu_milli,num_gpu\n\"1000,1\n");
  CHECK_THROWS_WITH(read_tasks_csv(open_quote), Catch::Contains("line 2"));
  std::stringstream empty_cpu("cpu_milli,num_gpu\n,1\n");
  CHECK_THROWS_WITH(read_tasks_csv(empty_cpu), Catch::Contains("line 2") && Catch::Contains("cpu_milli"));
}

TEST_CASE("replay protocols: seeded random order, GPU tasks only, figures at 100% and at the end", "[scheduler][trace]") {
  auto t = generate_trace(40, 600, 3, TraceMix::sharing);
  ReplayOptions ro;
  ro.order = ReplayOptions::Order::random;
  ro.seed = 5;
  ro.inflate = 1.3;
  auto run = [&](const ReplayOptions& o) {
    auto p = make_policy("pack");
    return replay(t.nodes, t.tasks, *p, o, fake_clock);
  };
  auto a = run(ro), b = run(ro);
  CHECK(a.placed == b.placed);  // reproducible
  CHECK(a.final_allocated_gpu_ratio == b.final_allocated_gpu_ratio);
  ReplayOptions other = ro;
  other.seed = 6;
  auto c = run(other);
  CHECK((c.placed != a.placed || c.gpu_placed != a.gpu_placed));  // another order
  CHECK(a.allocated_at_100 > 0.5);
  CHECK(a.allocated_at_100 <= a.final_allocated_gpu_ratio + 1e-12);  // no departures: allocation only grows
  CHECK(a.unallocated() == Approx(1.0 - a.final_allocated_gpu_ratio));
  // GPU tasks only: no CPU-only task is ever placed or failed.
  ReplayOptions gpu = ro;
  gpu.gpu_only = true;
  auto g = run(gpu);
  std::size_t cpu_only = 0;
  for (const auto& k : t.tasks) cpu_only += k.num_gpu == 0 ? 1 : 0;
  REQUIRE(cpu_only > 0);
  double gpus_tried = g.gpu_placed + g.gpu_failed;
  CHECK(gpus_tried >= 1.3 * 0.999 * [&] { double n = 0; for (const auto& x : t.nodes) n += x.gpus; return n; }());
  CHECK(g.placed + g.failed < a.placed + a.failed);  // the CPU-only arrivals are gone
}

TEST_CASE("a small trace whose replay is known: fgd keeps room the last task needs, best fit does not", "[scheduler][trace]") {
  // Two 1-GPU nodes; shares of 0.5, 0.3, 0.5, then 0.7. Best fit puts 0.5 and 0.3 on one GPU (0.2 left), the
  // second 0.5 on the other, and the 0.7 finds no room: 1.3 of 2 GPUs. FGD puts the 0.3 on the empty GPU (a
  // 0.2 sliver would be useless to every shape it knows), the second 0.5 fills the first GPU, the 0.7 fits.
  std::stringstream n("sn,cpu_milli,memory_mib,gpu,model\na,8000,8192,1,A100\nb,8000,8192,1,A100\n");
  std::stringstream k(
      "name,cpu_milli,num_gpu,gpu_milli,creation_time\nt1,1000,1,500,0\nt2,1000,1,300,1\nt3,1000,1,500,2\nt4,1000,1,700,3\n");
  auto nodes = read_nodes_csv(n);
  auto tasks = read_tasks_csv(k);
  auto bf = make_policy("exhaustive-best-fit");
  auto b = replay(nodes, tasks, *bf, 0, fake_clock);
  CHECK(b.placed == 3);
  CHECK(b.final_allocated_gpu_ratio == Approx(0.65));
  for (bool expect : {false, true}) {
    INFO("workload " << (expect ? "given" : "learned"));
    ReplayOptions ro;
    ro.expect_workload = expect;
    auto fgd = make_policy("fgd");
    auto f = replay(nodes, tasks, *fgd, ro, fake_clock);
    CHECK(f.placed == 4);
    CHECK(f.final_allocated_gpu_ratio == Approx(1.0));
  }
}
