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
