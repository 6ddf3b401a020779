// The bundled trainable: the MLP of iogrid/nn.hpp trained on a classification dataset (Fashion-MNIST in the
// example), one epoch per iteration, measured on a validation set after each.
//
//   auto data = iogrid::tune::mlp_trial_data(train.slice(0, 50000), train.slice(50000, 60000));
//   auto r = iogrid::tune::run<iogrid::tune::MlpTrial>(space, config, data);
//
// Parameters (a missing one takes its default): lr (0.05), hidden (256: layers {features, hidden, hidden/2,
// classes}), batch (64), momentum (0.9), optimizer ("sgd" or "adam"), lr_decay (1: the lr is multiplied by it
// after every epoch), seed (1: initial weights and shuffling).
// Metrics: accuracy (validation), loss (mean training loss of the epoch), train_accuracy, samples_per_s, epoch.
// Runs on the GPU its actor holds when it holds one (num_gpus > 0 in the sweep's resources), else on one CPU.
#pragma once

#include <memory>

#include "iogrid/bytes.hpp"
#include "iogrid/data.hpp"
#include "iogrid/object_ref.hpp"
#include "iogrid/train.hpp"
#include "iogrid/tune/trial.hpp"

namespace iogrid::tune {

struct MlpTrialData {
  ObjectRef<data::Dataset> train, validation;
  int classes = 10;
  IOGRID_SERIALIZE(train, validation, classes)
};
// Puts both sets into the object store once; every trial gets them by reference.
MlpTrialData mlp_trial_data(const data::Dataset& train, const data::Dataset& validation, int classes = 10);

// The example's and the bench's 32-trial grid: lr {0.003, 0.01, 0.03, 0.1} x hidden {32, 64, 128, 256} x
// batch {32, 128} (SGD with momentum 0.9).
class Space;
Space mlp_sweep_space();

class MlpTrial {
 public:
  using Shared = MlpTrialData;
  MlpTrial(const Params& p, const MlpTrialData& d);  // throws iogrid::Error for a bad parameter
  ~MlpTrial();
  Metrics step();
  Bytes save();
  void restore(const Bytes& b);
  // A trial's checkpoint (save()'s bytes, Result::best_checkpoint) as the trainer's checkpoint: model and weights.
  static train::Checkpoint checkpoint_of(const Bytes& b);  // throws iogrid::Error when damaged

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iogrid::tune
