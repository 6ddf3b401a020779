// Batch inference: a dataset split into blocks, a model's weights put once into the object store and shared
// by reference, a pool of inference actors (CPUs or GPUs) that grows with the backlog, outputs in input order.
//
//   auto out = iogrid::infer::map_batches(iogrid::data::fashion_mnist("test"), result.final, {.batch_size = 500});
//   // out.predictions[i] is the class of image i
//
// Rules:
// - The dataset is cut into blocks of block_size images; a block is put into the object store only when it is
//   dispatched, and at most max_blocks_in_flight blocks (never more than a quarter of the object store's
//   capacity in bytes) are in flight at once: backpressure, so memory stays bounded however large the input.
// - The pool starts with min_actors and adds one (up to max_actors) whenever every actor is busy and blocks
//   are waiting; each actor holds cpus_per_actor CPUs (and gpus_per_actor GPUs: its model then runs there).
// - Each actor runs its block in batches of batch_size; predictions come back per block and are placed by block
//   index, so the output order is the input order whatever order blocks finish in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "iogrid/data.hpp"
#include "iogrid/train.hpp"

namespace iogrid::infer {

struct Config {
  int batch_size = 500;
  int block_size = 2000;
  int min_actors = 1;
  int max_actors = 0;              // 0: the cluster's free CPUs / cpus_per_actor at the start (GPUs / gpus_per_actor with GPUs)
  int max_blocks_in_flight = 0;    // 0: 2 x max_actors
  double cpus_per_actor = 1;
  double gpus_per_actor = 0;
  bool progress = true;            // a progress line on stderr
};

struct Result {
  std::vector<std::int32_t> predictions;  // one per image, in input order
  double seconds = 0;
  double images_per_s = 0;
  int actors = 0;                  // the pool's largest size
  int max_in_flight = 0;           // the most blocks that were in flight at once
  double accuracy = 0;             // against the dataset's labels
};

// `model` holds the MLP's spec and weights (e.g. a training run's final checkpoint).
Result map_batches(const data::Dataset& d, const train::Checkpoint& model, Config config = {});

}  // namespace iogrid::infer
