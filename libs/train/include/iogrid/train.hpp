// Data-parallel training: N worker actors, each with a replica of the model and a shard of the data, average
// their gradients every step through a collective group (Gloo on CPUs, NCCL on GPUs), so every replica holds
// the same weights after every step.
//
//   iogrid::train::Config c;
//   c.workers = 2;
//   c.epochs = 10;
//   auto r = iogrid::train::fit(iogrid::data::fashion_mnist("train"), iogrid::data::fashion_mnist("test"), c);
//   std::cout << r.test_accuracy;
//
// Rules:
// - Each step every worker takes batch_size examples of its shard (shuffled per epoch from seed, epoch, rank),
//   computes gradients, and the group averages them (one allreduce of the flat gradient buffer); then every
//   worker applies the same optimiser update. Every worker runs the same number of steps per epoch (the
//   smallest shard's), so an epoch covers the data once, less at most world x batch_size examples.
// - After each epoch the driver checkpoints rank 0's weights and optimiser state into the object store (and to
//   checkpoint_dir/checkpoint-<epoch>.bin when set) and measures test accuracy on rank 0's replica.
// - A worker that dies (or a collective that fails) stops the epoch; the whole gang is replaced and resumes
//   from the last checkpoint, up to max_restarts times. The new gang forms a new group (name + attempt).
// - Gang placement: with `gang`, fit() first reserves it (iogrid::create_cluster: every bundle at once, or an
//   iogrid::Error naming what could not be met), runs worker r on bundle r for the whole run (restarts
//   included), and deletes the reservation when fit() returns or throws. `cluster` names a reservation made
//   beforehand instead (kept). Either needs at least one bundle per worker.
// - CPU workers run their BLAS on one thread each: a worker is one CPU (cpus_per_worker says how many the
//   scheduler holds for it).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "iogrid/clusters.hpp"
#include "iogrid/data.hpp"
#include "iogrid/nn.hpp"

namespace iogrid::train {

struct EpochMetrics {
  int epoch = 0;                // from 1
  double loss = 0;              // mean training loss over the epoch
  double train_accuracy = 0;    // on the training batches, as they were trained
  double test_accuracy = 0;
  double samples_per_s = 0;     // training examples per second over the whole gang (epoch wall time)
  double seconds = 0;
  std::int64_t samples = 0;
  int restarts = 0;             // gang restarts so far
  IOGRID_SERIALIZE(epoch, loss, train_accuracy, test_accuracy, samples_per_s, seconds, samples, restarts)
};

struct Checkpoint {
  int epoch = 0;                // epochs completed
  nn::ModelSpec model;
  std::vector<float> weights;
  std::vector<float> optimizer_state;
  std::int64_t optimizer_steps = 0;
  IOGRID_SERIALIZE(epoch, model, weights, optimizer_state, optimizer_steps)
};
void save_checkpoint(const Checkpoint& c, const std::string& path);
Checkpoint load_checkpoint(const std::string& path);  // throws iogrid::Error for a missing or damaged file

struct Config {
  nn::ModelSpec model;
  nn::OptimizerSpec optimizer{.kind = "sgd", .lr = 0.05f, .momentum = 0.9f};
  int workers = 2;
  int epochs = 10;
  int batch_size = 64;            // per worker per step
  float lr_decay = 1.0f;          // the learning rate is multiplied by this after every epoch
  double cpus_per_worker = 1;
  double gpus_per_worker = 0;     // > 0: replicas on GPUs (a fraction allowed), gradients through NCCL
  std::uint64_t seed = 1;         // shuffling
  std::string checkpoint_dir;     // empty: checkpoints only in the object store
  std::string resume_from;        // a checkpoint file to start from (its epoch count included)
  int max_restarts = 3;
  std::chrono::milliseconds collective_timeout{10000};  // a stuck or dead peer fails a step after this
  std::optional<ClusterSpec> gang;  // reserve the workers' GPUs as one gang for this run (see the rules above)
  std::string cluster;            // or run in this existing reservation, worker r on bundle r
  std::string name = "train";     // names the groups
  bool progress = true;           // one line per epoch on stderr
  std::function<void(const EpochMetrics&)> on_epoch;
};

struct Result {
  std::vector<EpochMetrics> history;
  Checkpoint final;               // weights and optimiser state after the last epoch
  double test_accuracy = 0;
  double samples_per_s = 0;       // median over epochs
  int restarts = 0;
  bool replicas_identical = false;  // every worker's weights bit-identical at the end (checked, not assumed)
  std::vector<std::string> worker_nodes;  // the node each rank ran on (last gang)
  std::string cluster;            // the reservation the gang ran in (empty: none)
};

class Trainer {
 public:
  Trainer(Config config, const data::Dataset& train, const data::Dataset& test);
  ~Trainer();
  Result fit();
  // Kills worker `rank`'s actor as a failure would (from any thread, while fit() runs): the gang restarts
  // from the last checkpoint. For tests and drills.
  void kill_worker(int rank);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

inline Result fit(const data::Dataset& train, const data::Dataset& test, Config config) {
  return Trainer(std::move(config), train, test).fit();
}

}  // namespace iogrid::train
