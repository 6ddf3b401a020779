#include "iogrid/nn.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>

#include "gpu/kernels/ops.hpp"
#include "gpu/memory.hpp"

namespace iogrid::nn {

namespace kernels = iogrid::gpu::kernels;

namespace {

kernels::Ops& ops_for(Device d) {
  if (d.is_cpu()) return kernels::cpu_ops();
  std::string why;
  auto* ops = kernels::cuda_ops(d.index, &why);
  if (!ops) throw Error("iogrid: no kernels for " + d.str() + ": " + why);
  return *ops;
}

float* f32(Tensor& t) { return static_cast<float*>(t.raw()); }

// Host bytes into a tensor's storage (host or device), and back.
void upload(Tensor& t, const void* src, std::size_t bytes) {
  if (t.device().is_cpu()) std::memcpy(t.raw(), src, bytes);
  else gpu::copy_to_device(t.device().index, t.raw(), src, bytes);
}
void download(const Tensor& t, void* dst, std::size_t bytes) {
  if (t.device().is_cpu()) std::memcpy(dst, t.raw(), bytes);
  else gpu::copy_to_host(t.device().index, dst, t.raw(), bytes);
}

}  // namespace

std::size_t ModelSpec::features() const {
  if (!conv.empty()) {
    std::size_t n = 1;
    for (int d : image) n *= std::size_t(std::max(d, 0));
    return n;
  }
  return layers.empty() ? 0 : std::size_t(std::max(layers.front(), 0));
}

std::string ModelSpec::describe() const {
  std::string s;
  for (const auto& c : conv)
    s += "conv" + std::to_string(c.channels) + "k" + std::to_string(c.kernel) + "p" + std::to_string(c.pool) + "-";
  for (std::size_t i = 0; i < layers.size(); ++i) s += (i ? "-" : "") + std::to_string(layers[i]);
  return s;
}

ModelSpec mlp(std::vector<int> layers, std::uint64_t seed) {
  ModelSpec s;
  s.layers = std::move(layers);
  s.seed = seed;
  return s;
}

namespace {
// The {height, width, channels} each conv block gives; throws when a block does not fit its input.
// Sizes a model may have (a spec from a file is checked against them before anything is computed from it).
constexpr int kMaxSide = 1 << 16, kMaxChannels = 1 << 16, kMaxKernel = 63;

// h x w x c as an int, or an error when a model of that size cannot be built.
int features_of(std::int64_t h, std::int64_t w, std::int64_t c) {
  const std::int64_t n = h * w * c;  // each factor <= 2^16: no overflow in 64 bits
  if (n > std::numeric_limits<int>::max())
    throw Error("iogrid: " + std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c) + " features are too many");
  return static_cast<int>(n);
}

std::vector<std::vector<int>> block_shapes(const std::vector<int>& image, const std::vector<Conv>& blocks) {
  if (image.size() != 3 || image[0] <= 0 || image[1] <= 0 || image[2] <= 0)
    throw Error("iogrid: a model with conv blocks needs its input image as {height, width, channels}, all positive");
  if (image[0] > kMaxSide || image[1] > kMaxSide || image[2] > kMaxChannels)
    throw Error("iogrid: an input image of " + std::to_string(image[0]) + "x" + std::to_string(image[1]) + "x" +
                std::to_string(image[2]) + " is larger than a model may take (sides up to " + std::to_string(kMaxSide) +
                ", channels up to " + std::to_string(kMaxChannels) + ")");
  std::vector<std::vector<int>> out;
  int h = image[0], w = image[1];
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const auto& b = blocks[i];
    const std::string which = "conv block " + std::to_string(i + 1);
    if (b.channels <= 0 || b.channels > kMaxChannels)
      throw Error("iogrid: " + which + " needs a channel count from 1 to " + std::to_string(kMaxChannels));
    if (b.kernel <= 0 || b.kernel % 2 == 0 || b.kernel > kMaxKernel)
      throw Error("iogrid: " + which + " needs an odd kernel size up to " + std::to_string(kMaxKernel) + ", got " + std::to_string(b.kernel));
    if (b.pool <= 0) throw Error("iogrid: " + which + " needs a pool size of 1 or more");
    if (h / b.pool == 0 || w / b.pool == 0)
      throw Error("iogrid: " + which + " pools a " + std::to_string(h) + "x" + std::to_string(w) + " input away (pool " +
                  std::to_string(b.pool) + ")");
    h /= b.pool, w /= b.pool;
    features_of(h, w, b.channels);
    out.push_back({h, w, b.channels});
  }
  return out;
}
}  // namespace

ModelSpec cnn(std::vector<int> image, std::vector<Conv> blocks, std::vector<int> dense, std::uint64_t seed) {
  ModelSpec s;
  auto shapes = block_shapes(image, blocks);
  const auto& last = shapes.empty() ? image : shapes.back();
  s.layers = {features_of(last[0], last[1], last[2])};
  s.layers.insert(s.layers.end(), dense.begin(), dense.end());
  s.conv = std::move(blocks);
  s.image = std::move(image);
  s.seed = seed;
  return s;
}

ModelSpec small_cnn(int classes, std::uint64_t seed) {
  return cnn({28, 28, 1}, {{.channels = 16, .kernel = 3, .pool = 2}, {.channels = 32, .kernel = 3, .pool = 2}},
             {128, classes}, seed);
}

struct Model::Impl {
  // A conv block's shapes, parameter offsets and scratch (kept from forward for backward).
  struct Block {
    int h, w, cin, cout, k, pool;  // input height/width/channels; output before pooling is h x w x cout
    std::size_t w_off, b_off;
    Tensor cols, z, pooled, argmax;  // im2col of the input, post-ReLU output, pooled output, pooling choices
    Tensor dz, dx;                   // gradients: of z (with pooling), of the block's input
    std::size_t out_values(int batch) const { return std::size_t(batch) * std::size_t(h / pool) * std::size_t(w / pool) * std::size_t(cout); }
  };

  ModelSpec spec;
  Device device;
  kernels::Ops* ops = nullptr;
  Tensor params, grads;
  std::vector<Block> blocks;
  std::vector<std::size_t> w_off, b_off;  // offsets of each dense layer's weights and bias in the flat buffers
  // Scratch: the input batch, the dense layers' outputs (post-ReLU), labels, a gradient buffer per dense width.
  int capacity = 0;
  Tensor input, input_u8;  // input_u8: the raw pixels, on a GPU only
  std::vector<Tensor> acts;
  Tensor labels, delta_a, delta_b;

  int layers() const { return int(spec.layers.size()) - 1; }
  int width(int i) const { return spec.layers[std::size_t(i)]; }
  std::size_t features() const { return spec.features(); }

  Tensor f32_tensor(std::size_t n) { return Tensor({std::int64_t(n)}, DType::f32, device); }

  void ensure(int batch) {
    if (batch <= capacity) return;
    capacity = std::max(batch, 64);
    const std::size_t cap = std::size_t(capacity);
    for (auto& b : blocks) {
      const std::size_t pixels = cap * std::size_t(b.h) * std::size_t(b.w);
      if (pixels * std::size_t(b.cout) >= (std::size_t(1) << 31))
        throw Error("iogrid: a batch of " + std::to_string(batch) + " is too large for this model's conv blocks");
      b.cols = f32_tensor(pixels * std::size_t(b.k * b.k * b.cin));
      b.z = f32_tensor(pixels * std::size_t(b.cout));
      b.dx = f32_tensor(pixels * std::size_t(b.cin));
      if (b.pool > 1) {
        b.dz = f32_tensor(pixels * std::size_t(b.cout));
        b.pooled = f32_tensor(b.out_values(capacity));
        b.argmax = Tensor({std::int64_t(b.out_values(capacity))}, DType::i32, device);
      }
    }
    input = f32_tensor(cap * features());
    if (!device.is_cpu()) input_u8 = Tensor({std::int64_t(cap * features())}, DType::u8, device);
    acts.clear();
    int widest = 0;
    for (int i = 1; i <= layers(); ++i) {
      acts.push_back(f32_tensor(cap * std::size_t(width(i))));
      widest = std::max(widest, width(i));
    }
    widest = std::max(widest, width(0));
    labels = Tensor({capacity}, DType::i32, device);
    delta_a = f32_tensor(cap * std::size_t(widest));
    delta_b = f32_tensor(cap * std::size_t(widest));
  }

  // Scales u8 pixels into `input` (on a GPU: the bytes go there and are scaled there) and copies the labels.
  void load(const std::uint8_t* images, const std::int32_t* y, int batch) {
    ensure(batch);
    const std::size_t n = std::size_t(batch) * features();
    const std::uint8_t* pixels = images;
    if (!device.is_cpu()) {
      upload(input_u8, images, n);
      pixels = static_cast<const std::uint8_t*>(input_u8.raw());
    }
    ops->u8_to_f32(pixels, n, 1.0f / 255.0f, f32(input));
    if (y) upload(labels, y, std::size_t(batch) * 4);
  }

  // A block's output (what the next block or the first dense layer reads).
  float* block_out(Block& b) { return b.pool > 1 ? f32(b.pooled) : f32(b.z); }
  // The input of dense layer i (0: the last block's output or the input batch), and the output of layer i.
  const float* dense_in(int i) {
    if (i > 0) return f32(acts[std::size_t(i - 1)]);
    return blocks.empty() ? f32(input) : block_out(blocks.back());
  }

  void forward(int batch) {
    float* p = f32(params);
    const float* x = f32(input);
    for (auto& b : blocks) {
      const int rows = batch * b.h * b.w, kk = b.k * b.k * b.cin;
      ops->im2col(x, batch, b.h, b.w, b.cin, b.k, b.k / 2, f32(b.cols));
      ops->gemm(false, false, rows, b.cout, kk, 1.0f, f32(b.cols), p + b.w_off, 0.0f, f32(b.z));
      ops->bias_add(f32(b.z), p + b.b_off, rows, b.cout);
      ops->relu(f32(b.z), std::size_t(rows) * std::size_t(b.cout));
      if (b.pool > 1)
        ops->max_pool(f32(b.z), batch, b.h, b.w, b.cout, b.pool, f32(b.pooled), static_cast<std::int32_t*>(b.argmax.raw()));
      x = block_out(b);
    }
    for (int i = 0; i < layers(); ++i) {
      const int in = width(i), out = width(i + 1);
      float* z = f32(acts[std::size_t(i)]);
      ops->gemm(false, false, batch, out, in, 1.0f, dense_in(i), p + w_off[std::size_t(i)], 0.0f, z);
      ops->bias_add(z, p + b_off[std::size_t(i)], batch, out);
      if (i + 1 < layers()) ops->relu(z, std::size_t(batch) * std::size_t(out));
    }
  }

  // Backward from dlogits (in delta_a) to grads.
  void backward(int batch) {
    float* g = f32(grads);
    const float* p = f32(params);
    float* dz = f32(delta_a);
    for (int i = layers() - 1; i >= 0; --i) {
      const int in = width(i), out = width(i + 1);
      const float* a = dense_in(i);
      ops->gemm(true, false, in, out, batch, 1.0f, a, dz, 0.0f, g + w_off[std::size_t(i)]);
      ops->column_sums(dz, g + b_off[std::size_t(i)], batch, out);
      if (i == 0 && blocks.empty()) return;
      float* da = dz == f32(delta_a) ? f32(delta_b) : f32(delta_a);
      ops->gemm(false, true, batch, in, out, 1.0f, dz, p + w_off[std::size_t(i)], 0.0f, da);
      if (i > 0) ops->relu_backward(da, a, std::size_t(batch) * std::size_t(in));  // a block applies its own mask
      dz = da;
    }
    // dz: the gradient of the last block's output.
    for (std::size_t j = blocks.size(); j-- > 0;) {
      auto& b = blocks[j];
      const int rows = batch * b.h * b.w, kk = b.k * b.k * b.cin;
      const std::size_t zn = std::size_t(rows) * std::size_t(b.cout);
      float* dzb = dz;  // without pooling the incoming gradient is z's, masked in place (it is scratch)
      if (b.pool > 1) {
        dzb = f32(b.dz);
        ops->max_pool_backward(dz, static_cast<const std::int32_t*>(b.argmax.raw()), b.out_values(batch), dzb, zn);
      }
      ops->relu_backward(dzb, f32(b.z), zn);
      ops->gemm(true, false, kk, b.cout, rows, 1.0f, f32(b.cols), dzb, 0.0f, g + b.w_off);
      ops->column_sums(dzb, g + b.b_off, rows, b.cout);
      if (j == 0) return;
      // cols is spent (the weight gradient above was its last use): it takes the gradient of the patches.
      ops->gemm(false, true, rows, kk, b.cout, 1.0f, dzb, p + b.w_off, 0.0f, f32(b.cols));
      ops->col2im(f32(b.cols), batch, b.h, b.w, b.cin, b.k, b.k / 2, f32(b.dx));
      dz = f32(b.dx);  // the gradient of the previous block's output
    }
  }
};

void ModelSpec::check() const {
  if (layers.size() < 2) throw Error("iogrid: a model needs at least an input and an output width");
  for (int w : layers)
    if (w <= 0) throw Error("iogrid: layer widths must be positive, got " + std::to_string(w));
  double dense = 0;  // weights and biases of the dense layers
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) dense += (double(layers[i]) + 1) * double(layers[i + 1]);
  if (dense > double(1ull << 32))
    throw Error("iogrid: the dense layers would hold " + std::to_string(dense) + " parameters; at most 2^32 are allowed");
  if (conv.empty()) {
    if (!image.empty())
      throw Error("iogrid: an input image shape is only used with conv blocks (an MLP takes layers[0] features)");
    return;
  }
  const auto last = block_shapes(image, conv).back();
  const int gives = features_of(last[0], last[1], last[2]);
  if (layers.front() != gives)
    throw Error("iogrid: the conv blocks give " + std::to_string(gives) + " features (" + std::to_string(last[0]) + "x" +
                std::to_string(last[1]) + "x" + std::to_string(last[2]) + "), but layers[0] is " +
                std::to_string(layers.front()) + " (iogrid::nn::cnn() computes it)");
}

Model::Model(ModelSpec spec, Device device) : impl_(std::make_unique<Impl>()) {
  spec.check();
  auto& m = *impl_;
  std::size_t total = 0;
  int h = spec.image.empty() ? 0 : spec.image[0], w = spec.image.empty() ? 0 : spec.image[1],
      c = spec.image.empty() ? 0 : spec.image[2];
  for (const auto& b : spec.conv) {
    Impl::Block blk{};
    blk.h = h, blk.w = w, blk.cin = c, blk.cout = b.channels, blk.k = b.kernel, blk.pool = b.pool;
    blk.w_off = total;
    total += std::size_t(b.kernel * b.kernel * c) * std::size_t(b.channels);
    blk.b_off = total;
    total += std::size_t(b.channels);
    m.blocks.push_back(std::move(blk));
    h /= b.pool, w /= b.pool, c = b.channels;
  }
  m.spec = std::move(spec);
  m.device = device;
  m.ops = &ops_for(device);
  for (int i = 0; i < m.layers(); ++i) {
    m.w_off.push_back(total);
    total += std::size_t(m.width(i)) * std::size_t(m.width(i + 1));
    m.b_off.push_back(total);
    total += std::size_t(m.width(i + 1));
  }
  m.params = Tensor({std::int64_t(total)}, DType::f32, device);
  m.grads = Tensor({std::int64_t(total)}, DType::f32, device);
  // He-normal weights, zero biases; dense layer i keeps the seed stream it had before conv blocks existed.
  const std::uint64_t base = m.spec.seed * 1000003ull;
  for (std::size_t j = 0; j < m.blocks.size(); ++j) {
    const auto& b = m.blocks[j];
    const std::size_t fan_in = std::size_t(b.k * b.k * b.cin);
    m.ops->init_normal(f32(m.params) + b.w_off, fan_in * std::size_t(b.cout), 0.0f, std::sqrt(2.0f / float(fan_in)),
                       base + 500u + j);
  }
  for (int i = 0; i < m.layers(); ++i)
    m.ops->init_normal(f32(m.params) + m.w_off[std::size_t(i)], std::size_t(m.width(i)) * std::size_t(m.width(i + 1)), 0.0f,
                       std::sqrt(2.0f / float(m.width(i))), base + std::uint64_t(i));
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelSpec& Model::spec() const { return impl_->spec; }
Device Model::device() const { return impl_->device; }
std::size_t Model::num_params() const { return impl_->params.numel(); }
Tensor& Model::params() { return impl_->params; }
Tensor& Model::grads() { return impl_->grads; }

BatchStats Model::train_batch(const std::uint8_t* images, const std::int32_t* y, int batch) {
  auto& m = *impl_;
  if (batch <= 0) throw Error("iogrid: train_batch needs at least one example");
  m.load(images, y, batch);
  m.forward(batch);
  const int classes = m.width(m.layers());
  BatchStats s;
  int correct = 0;
  s.loss = m.ops->softmax_xent(f32(m.acts.back()), static_cast<const std::int32_t*>(m.labels.raw()), batch, classes,
                               f32(m.delta_a), &correct);
  s.correct = correct;
  s.count = batch;
  m.backward(batch);
  m.ops->synchronize();
  return s;
}

std::vector<std::int32_t> Model::predict(const std::uint8_t* images, int batch) {
  auto& m = *impl_;
  if (batch <= 0) return {};
  m.load(images, nullptr, batch);
  m.forward(batch);
  const int classes = m.width(m.layers());
  std::vector<float> logits(std::size_t(batch) * std::size_t(classes));
  download(m.acts.back(), logits.data(), logits.size() * 4);
  std::vector<std::int32_t> out(static_cast<std::size_t>(batch));
  for (int r = 0; r < batch; ++r) {
    const float* row = logits.data() + std::size_t(r) * std::size_t(classes);
    out[std::size_t(r)] = std::int32_t(std::max_element(row, row + classes) - row);
  }
  return out;
}

BatchStats Model::evaluate(const data::Dataset& d, int batch) {
  if (d.features() != impl_->features())
    throw Error("iogrid: the model takes " + std::to_string(impl_->features()) + " features, the dataset has " +
                std::to_string(d.features()));
  BatchStats s;
  const auto* img = d.images.data<std::uint8_t>();
  const auto* lab = d.labels.data<std::int32_t>();
  for (std::size_t at = 0; at < d.size(); at += std::size_t(batch)) {
    const int n = int(std::min<std::size_t>(std::size_t(batch), d.size() - at));
    auto pred = predict(img + at * d.features(), n);
    for (int i = 0; i < n; ++i) s.correct += pred[std::size_t(i)] == lab[at + std::size_t(i)];
    s.count += n;
  }
  return s;
}

std::vector<float> Model::weights() const { return impl_->params.to_vector<float>(); }

void Model::set_weights(const std::vector<float>& w) {
  auto& m = *impl_;
  if (w.size() != m.params.numel())
    throw Error("iogrid: weights of " + std::to_string(w.size()) + " values for a model of " + std::to_string(m.params.numel()));
  upload(m.params, w.data(), w.size() * 4);
}

// --- optimiser -------------------------------------------------------------------------------------------
struct Optimizer::Impl {
  Model::Impl* model;
  OptimizerSpec spec;
  Tensor m1, m2;  // sgd: m1 = velocity; adam: first and second moments
  std::int64_t steps = 0;
};

Optimizer::Optimizer(Model& model, OptimizerSpec spec) : impl_(std::make_unique<Impl>()) {
  if (spec.kind != "sgd" && spec.kind != "adam")
    throw Error("iogrid: unknown optimiser '" + spec.kind + "' (sgd or adam)");
  if (!(spec.lr > 0)) throw Error("iogrid: the learning rate must be positive");
  impl_->model = model.impl_.get();
  impl_->spec = std::move(spec);
  const auto n = std::int64_t(model.num_params());
  impl_->m1 = Tensor({n}, DType::f32, model.device());
  if (impl_->spec.kind == "adam") impl_->m2 = Tensor({n}, DType::f32, model.device());
}
Optimizer::~Optimizer() = default;

void Optimizer::step() {
  auto& o = *impl_;
  auto& m = *o.model;
  const std::size_t n = m.params.numel();
  ++o.steps;
  if (o.spec.kind == "sgd")
    m.ops->sgd_momentum(f32(m.params), f32(m.grads), f32(o.m1), n, o.spec.lr, o.spec.momentum, o.spec.weight_decay);
  else
    m.ops->adam(f32(m.params), f32(m.grads), f32(o.m1), f32(o.m2), n, o.spec.lr, o.spec.beta1, o.spec.beta2, o.spec.eps,
                int(o.steps));
}

void Optimizer::set_lr(float lr) { impl_->spec.lr = lr; }
std::int64_t Optimizer::steps() const { return impl_->steps; }

std::vector<float> Optimizer::state() const {
  auto s = impl_->m1.to_vector<float>();
  if (impl_->m2.defined()) {
    auto b = impl_->m2.to_vector<float>();
    s.insert(s.end(), b.begin(), b.end());
  }
  return s;
}

void Optimizer::set_state(const std::vector<float>& s, std::int64_t steps) {
  auto& o = *impl_;
  const std::size_t n = o.m1.numel(), want = o.m2.defined() ? 2 * n : n;
  if (s.size() != want) throw Error("iogrid: optimiser state of " + std::to_string(s.size()) + " values, expected " + std::to_string(want));
  upload(o.m1, s.data(), n * 4);
  if (o.m2.defined()) upload(o.m2, s.data() + n, n * 4);
  o.steps = steps;
}

}  // namespace iogrid::nn
