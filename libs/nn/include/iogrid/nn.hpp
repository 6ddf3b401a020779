// Models for the workloads, built from the GPU layer's kernels (cuBLAS on a GPU, OpenBLAS on a CPU; the same
// numbers from the same seed on either).
//
//   iogrid::nn::Model model(iogrid::nn::mlp({784, 256, 128, 10}));     // on the CPU; Device::cuda(0) for a GPU
//   iogrid::nn::Model cnn(iogrid::nn::small_cnn());                    // two conv blocks, then dense layers
//   iogrid::nn::Optimizer opt(model, {.kind = "sgd", .lr = 0.05f, .momentum = 0.9f});
//   auto s = model.train_batch(images, labels, 128);                  // forward + backward: fills grads()
//   opt.step();
//
// A model is optional convolution blocks (k x k convolution with stride 1 and 'same' zero padding, ReLU, then
// p x p max-pooling), then dense layers (ReLU between them); the last layer's outputs are logits for softmax
// cross-entropy. Inputs are u8 pixels scaled to [0, 1]; images are height x width x channels (NHWC, so a
// Fashion-MNIST row of 784 bytes is a 28 x 28 x 1 image). Convolutions run as im2col + one GEMM.
// Layout: every parameter lives in one flat f32 tensor on the model's device (each conv block's weights
// [k*k*in_channels, channels] then its bias, then each dense layer's weights [in, out] row-major then its bias),
// every gradient in another of the same layout, so a data-parallel step averages all gradients with one allreduce.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/data.hpp"
#include "iogrid/tensor.hpp"

namespace iogrid::nn {

// A convolution block: `kernel` x `kernel` convolution to `channels` channels (odd kernel, stride 1, 'same'
// padding), ReLU, then `pool` x `pool` max-pooling (1: none).
struct Conv {
  int channels = 16;
  int kernel = 3;
  int pool = 2;
  IOGRID_SERIALIZE(channels, kernel, pool)
  friend bool operator==(const Conv& a, const Conv& b) {
    return a.channels == b.channels && a.kernel == b.kernel && a.pool == b.pool;
  }
};

struct ModelSpec {
  // Dense widths: input features, hidden..., classes. With conv blocks, layers[0] is the number of features the
  // last block gives (height x width x channels after pooling); small_cnn() fills it in.
  std::vector<int> layers{784, 256, 128, 10};
  std::vector<Conv> conv;          // empty: an MLP
  std::vector<int> image;          // with conv: the input as {height, width, channels}
  std::uint64_t seed = 1;          // initial weights (He-normal), the same on every device
  IOGRID_SERIALIZE(layers, conv, image, seed)

  // Throws iogrid::Error for fewer than two dense widths, a non-positive width, a conv block that does not fit
  // its input, or a layers[0] that is not what the blocks give (naming the right one).
  void check() const;
  // The number of input values per example (image height x width x channels, or layers[0]).
  std::size_t features() const;
  // Same layers, blocks and input shape (the seed may differ).
  bool same_architecture(const ModelSpec& o) const { return layers == o.layers && conv == o.conv && image == o.image; }
  // "784-256-128-10" or "conv16k3p2-conv32k3p2-1568-128-10".
  std::string describe() const;
};

// An MLP: input features, hidden widths..., classes.
ModelSpec mlp(std::vector<int> layers, std::uint64_t seed = 1);
// A small CNN for 28 x 28 x 1 images: conv 16 (3x3, pool 2) -> conv 32 (3x3, pool 2) -> 7*7*32 -> 128 -> classes.
ModelSpec small_cnn(int classes = 10, std::uint64_t seed = 1);
// A CNN over `image` = {height, width, channels} from the given blocks and dense widths after them (hidden...,
// classes); layers[0] is computed. Throws iogrid::Error when the blocks pool the image away.
ModelSpec cnn(std::vector<int> image, std::vector<Conv> blocks, std::vector<int> dense, std::uint64_t seed = 1);

struct BatchStats {
  double loss = 0;  // mean over the examples
  std::int64_t correct = 0;
  std::int64_t count = 0;
  double accuracy() const { return count ? double(correct) / double(count) : 0; }
};

class Model {
 public:
  // Throws iogrid::Error for a spec that check() refuses or a device that is not there.
  explicit Model(ModelSpec spec, Device device = Device::cpu());
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelSpec& spec() const;
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
  Optimizer(Model& model, OptimizerSpec spec);
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
