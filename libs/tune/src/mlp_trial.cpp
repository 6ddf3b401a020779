#include "iogrid/tune/mlp_trial.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "iogrid/nn.hpp"
#include "iogrid/runtime.hpp"
#include "iogrid/train.hpp"
#include "iogrid/tune/space.hpp"
#include "iogrid/train/replica.hpp"

namespace iogrid::tune {

MlpTrialData mlp_trial_data(const data::Dataset& train, const data::Dataset& validation, int classes) {
  if (train.size() == 0 || validation.size() == 0) throw Error("iogrid: the training and validation sets must not be empty");
  if (train.features() != validation.features())
    throw Error("iogrid: the training and validation sets have different feature counts");
  return {put(train), put(validation), classes};
}

Space mlp_sweep_space() {
  Space s;
  s.add("lr", grid({0.003, 0.01, 0.03, 0.1})).add("hidden", grid({32, 64, 128, 256})).add("batch", grid({32, 128}));
  s.add("lr_decay", grid({0.8}));
  return s;
}

struct MlpTrial::Impl {
  data::Dataset train, validation;
  nn::ModelSpec spec;
  nn::OptimizerSpec opt_spec;
  int batch = 64;
  float lr_decay = 1;
  std::uint64_t seed = 1;
  nn::Model model;
  nn::Optimizer opt;
  int epoch = 0;

  Impl(const Params& p, const MlpTrialData& d, nn::ModelSpec s, nn::OptimizerSpec o)
      : train(get(d.train)), validation(get(d.validation)), spec(std::move(s)), opt_spec(o),
        model(spec, train::worker_device()), opt(model, opt_spec) {
    batch = int(p.has("batch") ? p.integer("batch") : 64);
    lr_decay = float(p.number_or("lr_decay", 1));
    seed = std::uint64_t(p.number_or("seed", 1));
    if (batch < 1 || std::size_t(batch) > train.size())
      throw Error("iogrid: batch " + std::to_string(batch) + " does not fit the " + std::to_string(train.size()) +
                  " training examples");
  }
};

namespace {
nn::ModelSpec spec_of(const Params& p, const MlpTrialData& d, std::size_t features) {
  const auto hidden = p.has("hidden") ? p.integer("hidden") : 256;
  if (hidden < 2) throw Error("iogrid: hidden must be at least 2, not " + std::to_string(hidden));
  nn::ModelSpec s;
  s.layers = {int(features), int(hidden), int(hidden / 2), d.classes};
  s.seed = std::uint64_t(p.number_or("seed", 1));
  return s;
}
nn::OptimizerSpec optimizer_of(const Params& p) {
  nn::OptimizerSpec o;
  o.kind = p.has("optimizer") ? p.text("optimizer") : "sgd";
  if (o.kind != "sgd" && o.kind != "adam") throw Error("iogrid: optimizer must be sgd or adam, not " + o.kind);
  o.lr = float(p.number_or("lr", 0.05));
  if (!(o.lr > 0)) throw Error("iogrid: lr must be positive");
  o.momentum = float(p.number_or("momentum", 0.9));
  return o;
}
}  // namespace

MlpTrial::MlpTrial(const Params& p, const MlpTrialData& d) {
  auto features = get(d.validation).features();
  impl_ = std::make_unique<Impl>(p, d, spec_of(p, d, features), optimizer_of(p));
}

MlpTrial::~MlpTrial() = default;

Metrics MlpTrial::step() {
  auto& I = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  I.opt.set_lr(I.opt_spec.lr * std::pow(I.lr_decay, float(I.epoch)));
  const int steps = int(I.train.size() / std::size_t(I.batch));
  const auto st = train::train_epoch(I.model, I.opt, I.train, I.batch, steps, I.seed * 1000003ull + std::uint64_t(I.epoch) * 7919ull);
  ++I.epoch;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Metrics m;
  m["epoch"] = I.epoch;
  m["loss"] = st.steps ? st.loss_sum / double(st.steps) : 0;
  m["train_accuracy"] = st.samples ? double(st.correct) / double(st.samples) : 0;
  m["samples_per_s"] = double(st.samples) / secs;
  m["accuracy"] = I.model.evaluate(I.validation).accuracy();
  return m;
}

Bytes MlpTrial::save() {
  train::Checkpoint c;
  c.epoch = impl_->epoch;
  c.model = impl_->spec;
  c.weights = impl_->model.weights();
  c.optimizer_state = impl_->opt.state();
  c.optimizer_steps = impl_->opt.steps();
  auto buf = serialize(c);
  return Bytes(buf->data(), buf->size());
}

train::Checkpoint MlpTrial::checkpoint_of(const Bytes& b) {
  if (b.empty()) throw Error("iogrid: the trial's checkpoint is empty");
  auto buf = iogrid::core::make_buffer(b.size());
  std::copy(b.data(), b.data() + b.size(), buf->data());
  try {
    return deserialize<train::Checkpoint>(buf);
  } catch (const std::exception& e) {
    throw Error(std::string("iogrid: the trial's checkpoint is damaged (") + e.what() + ")");
  }
}

void MlpTrial::restore(const Bytes& b) {
  const auto c = checkpoint_of(b);
  if (!c.model.same_architecture(impl_->spec)) throw Error("iogrid: the checkpoint holds another model than this trial's");
  impl_->model.set_weights(c.weights);
  impl_->opt.set_state(c.optimizer_state, c.optimizer_steps);
  impl_->epoch = c.epoch;
}

}  // namespace iogrid::tune
