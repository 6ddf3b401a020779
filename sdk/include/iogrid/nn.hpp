// Models for the workloads, built from the GPU layer's kernels (cuBLAS on a GPU, OpenBLAS on a CPU; the same
// numbers from the same seed on either).
//
//   iogrid::nn::Mlp model({.layers = {784, 256, 128, 10}});            // on the CPU; Device::cuda(0) for a GPU
//   iogrid::nn::Optimizer opt(model, {.kind = "sgd", .lr = 0.05f, .momentum = 0.9f});
//   auto s = model.train_batch(images, labels, 128);                  // forward + backward: fills grads()
//   opt.step();
//
// Layout: every parameter lives in one flat f32 tensor on the model's device (layer 0's weights [in, out]
// row-major, then its bias [out], then layer 1's...), every gradient in another of the same layout, so a
// data-parallel step averages all gradients with one allreduce. Hidden layers use ReLU; the last layer's
// outputs are logits for softmax cross-entropy. Inputs are u8 pixels scaled to [0, 1].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/data.hpp"
#include "iogrid/tensor.hpp"

namespace iogrid::nn {

struct MlpSpec {
  std::vector<int> layers{784, 256, 128, 10};  // input, hidden..., classes
  std::uint64_t seed = 1;                      // initial weights (He-normal), the same on every device
  IOGRID_SERIALIZE(layers, seed)
};

struct BatchStats {
  double loss = 0;  // mean over the examples
  std::int64_t correct = 0;
  std::int64_t count = 0;
  double accuracy() const { return count ? double(correct) / double(count) : 0; }
};

class Mlp {
 public:
  // Throws iogrid::Error for fewer than two layers, a non-positive width, or a device that is not there.
  explicit Mlp(MlpSpec spec, Device device = Device::cpu());
  ~Mlp();
  Mlp(Mlp&&) noexcept;
  Mlp& operator=(Mlp&&) noexcept;

  const MlpSpec& spec() const;
  Device device() const;
  std::size_t num_params() const;
  Tensor& params();
  Tensor& grads();

  // Forward and backward over `batch` examples: grads() = gradient of the mean loss. Returns loss and hits.
  BatchStats train_batch(const std::uint8_t* images, const std::int32_t* labels, int batch);
  // Forward only.
  std::vector<std::int32_t> predict(const std::uint8_t* images, int batch);
  BatchStats evaluate(const data::Dataset& d, int batch = 1000);

  std::vector<float> weights() const;  // a host copy of params()
  void set_weights(const std::vector<float>& w);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend class Optimizer;
};

struct OptimizerSpec {
  std::string kind = "sgd";  // "sgd" (with momentum) or "adam"
  float lr = 0.05f;
  float momentum = 0.9f;     // sgd
  float weight_decay = 0;    // sgd
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adam
  IOGRID_SERIALIZE(kind, lr, momentum, weight_decay, beta1, beta2, eps)
};

// Updates a model's params() from its grads(); keeps its state (momentum, Adam moments) on the model's device.
class Optimizer {
 public:
  Optimizer(Mlp& model, OptimizerSpec spec);
  ~Optimizer();
  void step();
  void set_lr(float lr);
  std::int64_t steps() const;
  // For checkpoints: the state as host floats (and the step count), restored exactly.
  std::vector<float> state() const;
  void set_state(const std::vector<float>& s, std::int64_t steps);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace iogrid::nn
