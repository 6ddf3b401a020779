// Data-parallel training on the embedded cluster: identical replicas, learning, checkpoints and resume, and
// a worker killed mid-training.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iogrid/iogrid.hpp>
#include <iogrid/infer.hpp>
#include <iogrid/train.hpp>
#include <thread>

#include "../sdk/cluster_fixture.hpp"
#include "synthetic.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
iogrid::train::Config small_config() {
  iogrid::train::Config c;
  c.model.layers = {32, 16, 4};
  c.workers = 2;
  c.epochs = 3;
  c.batch_size = 16;
  c.progress = false;
  c.collective_timeout = 5000ms;
  return c;
}
}  // namespace

TEST_CASE("two workers train to the same weights, learn, and checkpoint every epoch, a run resumes from a file", "[train]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 2}}});
  auto train = synthetic(1600, 32, 4, 1), test = synthetic(400, 32, 4, 2);
  auto dir = fs::temp_directory_path() / ("iogrid-train-" + std::to_string(::getpid()));
  auto c = small_config();
  c.checkpoint_dir = dir.string();
  std::vector<int> seen;
  c.on_epoch = [&](const iogrid::train::EpochMetrics& m) { seen.push_back(m.epoch); };
  auto r = iogrid::train::fit(train, test, c);
  CHECK(r.replicas_identical);
  CHECK(seen == std::vector<int>{1, 2, 3});
  REQUIRE(r.history.size() == 3);
  CHECK(r.history[2].loss < r.history[0].loss);
  CHECK(r.test_accuracy > 0.95);
  CHECK(r.history[0].samples == 2 * 50 * 16);  // 800 examples per shard: 50 steps of 16 on each worker
  CHECK(r.samples_per_s > 0);
  for (int e = 1; e <= 3; ++e) CHECK(fs::exists(dir / ("checkpoint-" + std::to_string(e) + ".bin")));
  auto ck = iogrid::train::load_checkpoint((dir / "checkpoint-3.bin").string());
  CHECK(ck.epoch == 3);
  CHECK(ck.weights == r.final.weights);

  // Resume from epoch 2's file: only epoch 3 runs, and it reproduces the same weights.
  auto c2 = small_config();
  c2.resume_from = (dir / "checkpoint-2.bin").string();
  auto r2 = iogrid::train::fit(train, test, c2);
  REQUIRE(r2.history.size() == 1);
  CHECK(r2.history[0].epoch == 3);
  CHECK(r2.final.weights == r.final.weights);

  std::ofstream((dir / "junk.bin").string()) << "not a checkpoint";
  CHECK_THROWS_WITH(iogrid::train::load_checkpoint((dir / "junk.bin").string()), Catch::Contains("not an iogrid checkpoint"));
  fs::remove_all(dir);
  auto bad = small_config();
  bad.model.layers = {10, 4};
  CHECK_THROWS_WITH(iogrid::train::fit(train, test, bad), Catch::Contains("takes 10 features"));
}

TEST_CASE("a worker killed mid-training: the gang restarts from the last checkpoint and reaches the same quality", "[train]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 2}}});
  auto train = synthetic(1600, 32, 4, 1), test = synthetic(400, 32, 4, 2);
  auto c = small_config();
  c.epochs = 4;
  auto clean = iogrid::train::fit(train, test, c);

  // Worker 1 dies after epoch 2: epoch 3's call to it fails at once, and worker 0's first allreduce of the
  // epoch fails within the collective timeout (its peer is gone).
  auto c2 = small_config();
  c2.epochs = 4;
  std::unique_ptr<iogrid::train::Trainer> t;
  c2.on_epoch = [&](const iogrid::train::EpochMetrics& m) {
    if (m.epoch == 2 && m.restarts == 0) t->kill_worker(1);
  };
  t = std::make_unique<iogrid::train::Trainer>(c2, train, test);
  auto r = t->fit();
  CHECK(r.restarts == 1);
  REQUIRE(r.history.size() == 4);
  CHECK(r.history.back().epoch == 4);
  CHECK(r.replicas_identical);
  CHECK(r.test_accuracy > 0.95);
  CHECK(r.test_accuracy == Approx(clean.test_accuracy).margin(0.03));
}

TEST_CASE("a trainer reserves its workers as a gang, runs rank r on bundle r, and ends the reservation", "[train]") {
  iogrid::InitOptions o;
  for (const char* n : {"p1", "p2", "p3"})
    o.nodes.push_back({.name = n, .num_cpus = 2, .gpus = {{.model = "A100", .memory_gib = 40, .count = 1}}});
  Cluster cl(o);
  auto train = synthetic(1600, 32, 4, 1), test = synthetic(400, 32, 4, 2);
  auto c = small_config();
  c.epochs = 2;
  c.gang = iogrid::ClusterSpec{.gpus = 2, .gpu_model = "A100", .cpus_per_gpu = 1, .strategy = "strict-spread"};
  auto r = iogrid::train::fit(train, test, c);
  CHECK(r.replicas_identical);
  CHECK(!r.cluster.empty());
  REQUIRE(r.worker_nodes.size() == 2);
  CHECK(r.worker_nodes[0] != r.worker_nodes[1]);  // strict-spread: one bundle per provider
  CHECK(iogrid::list_clusters().empty());         // the reservation ended with the run

  // A reservation made beforehand: rank r on bundle r, and it is kept.
  auto res = iogrid::create_cluster({.gpus = 2, .gpu_model = "A100", .cpus_per_gpu = 1, .strategy = "strict-spread"});
  c.gang.reset();
  c.cluster = res.id;
  r = iogrid::train::fit(train, test, c);
  CHECK(r.worker_nodes == res.bundles);
  CHECK(iogrid::list_clusters().size() == 1);
  c.workers = 3;
  CHECK_THROWS_WITH(iogrid::train::fit(train, test, c), Catch::Contains("has 2 bundles for 3 workers"));
  iogrid::delete_cluster(res.id);
  // A gang that cannot be met fails at once, saying why.
  c.cluster.clear();
  c.gang = iogrid::ClusterSpec{.gpus = 4, .gpu_model = "A100"};
  CHECK_THROWS_WITH(iogrid::train::fit(train, test, c), Catch::Contains("cannot reserve 4 GPU(s)"));
}

TEST_CASE("a CNN trains data-parallel to identical replicas, its checkpoint serves batch inference, another model cannot resume it", "[train][cnn]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 2}}});
  auto train = synthetic(1600, 64, 4, 1), test = synthetic(400, 64, 4, 2);
  auto dir = fs::temp_directory_path() / ("iogrid-train-cnn-" + std::to_string(::getpid()));
  auto c = small_config();
  c.model = iogrid::nn::cnn({8, 8, 1}, {{.channels = 8, .kernel = 3, .pool = 2}}, {16, 4});
  c.epochs = 2;
  c.checkpoint_dir = dir.string();
  auto r = iogrid::train::fit(train, test, c);
  CHECK(r.replicas_identical);
  CHECK(r.test_accuracy > 0.9);
  CHECK(r.final.model.same_architecture(c.model));
  auto ck = iogrid::train::load_checkpoint((dir / "checkpoint-2.bin").string());
  CHECK(ck.model.conv == c.model.conv);
  CHECK(ck.model.image == c.model.image);

  iogrid::nn::Model m(ck.model);
  m.set_weights(ck.weights);
  auto served = iogrid::infer::map_batches(test, ck, {.batch_size = 50, .block_size = 100, .progress = false});
  CHECK(served.predictions == m.predict(test.images.data<std::uint8_t>(), int(test.size())));

  auto mlp = small_config();
  mlp.model.layers = {64, 16, 4};
  mlp.resume_from = (dir / "checkpoint-1.bin").string();
  CHECK_THROWS_WITH(iogrid::train::fit(train, test, mlp), Catch::Contains("holds another model"));
  auto wrong = c;
  wrong.checkpoint_dir.clear();
  wrong.model.layers[0] = 64;
  CHECK_THROWS_WITH(iogrid::train::fit(train, test, wrong), Catch::Contains("give 128 features (4x4x8), but layers[0] is 64"));
  fs::remove_all(dir);
}
