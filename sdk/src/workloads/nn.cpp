#include "iogrid/nn.hpp"

#include <algorithm>
#include <cmath>
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

struct Mlp::Impl {
  MlpSpec spec;
  Device device;
  kernels::Ops* ops = nullptr;
  Tensor params, grads;
  std::vector<std::size_t> w_off, b_off;  // offsets of each layer's weights and bias in the flat buffers
  // Scratch: activations per layer (post-ReLU), the input batch, labels, a gradient buffer per width.
  int capacity = 0;
  std::vector<Tensor> acts;
  Tensor labels, delta_a, delta_b;
  std::vector<float> host_x;

  int layers() const { return int(spec.layers.size()) - 1; }
  int width(int i) const { return spec.layers[std::size_t(i)]; }

  void ensure(int batch) {
    if (batch <= capacity) return;
    capacity = std::max(batch, 64);
    acts.clear();
    int widest = 0;
    for (int i = 0; i <= layers(); ++i) {
      acts.emplace_back(std::vector<std::int64_t>{capacity, width(i)}, DType::f32, device);
      widest = std::max(widest, width(i));
    }
    labels = Tensor({capacity}, DType::i32, device);
    delta_a = Tensor({capacity, widest}, DType::f32, device);
    delta_b = Tensor({capacity, widest}, DType::f32, device);
  }

  // Scales u8 pixels into acts[0] and copies the labels to the device.
  void load(const std::uint8_t* images, const std::int32_t* y, int batch) {
    ensure(batch);
    const std::size_t n = std::size_t(batch) * std::size_t(width(0));
    host_x.resize(n);
    for (std::size_t i = 0; i < n; ++i) host_x[i] = float(images[i]) * (1.0f / 255.0f);
    upload(acts[0], host_x.data(), n * 4);
    if (y) upload(labels, y, std::size_t(batch) * 4);
  }

  void forward(int batch) {
    float* p = f32(params);
    for (int i = 0; i < layers(); ++i) {
      const int in = width(i), out = width(i + 1);
      float* z = f32(acts[std::size_t(i + 1)]);
      ops->gemm(false, false, batch, out, in, 1.0f, f32(acts[std::size_t(i)]), p + w_off[std::size_t(i)], 0.0f, z);
      ops->bias_add(z, p + b_off[std::size_t(i)], batch, out);
      if (i + 1 < layers()) ops->relu(z, std::size_t(batch) * std::size_t(out));
    }
  }
};

Mlp::Mlp(MlpSpec spec, Device device) : impl_(std::make_unique<Impl>()) {
  if (spec.layers.size() < 2) throw Error("iogrid: an MLP needs at least an input and an output width");
  for (int w : spec.layers)
    if (w <= 0) throw Error("iogrid: MLP layer widths must be positive, got " + std::to_string(w));
  auto& m = *impl_;
  m.spec = std::move(spec);
  m.device = device;
  m.ops = &ops_for(device);
  std::size_t total = 0;
  for (int i = 0; i < m.layers(); ++i) {
    m.w_off.push_back(total);
    total += std::size_t(m.width(i)) * std::size_t(m.width(i + 1));
    m.b_off.push_back(total);
    total += std::size_t(m.width(i + 1));
  }
  m.params = Tensor({std::int64_t(total)}, DType::f32, device);
  m.grads = Tensor({std::int64_t(total)}, DType::f32, device);
  for (int i = 0; i < m.layers(); ++i)  // He-normal weights, zero biases
    m.ops->init_normal(f32(m.params) + m.w_off[std::size_t(i)], std::size_t(m.width(i)) * std::size_t(m.width(i + 1)), 0.0f,
                       std::sqrt(2.0f / float(m.width(i))), m.spec.seed * 1000003ull + std::uint64_t(i));
}

Mlp::~Mlp() = default;
Mlp::Mlp(Mlp&&) noexcept = default;
Mlp& Mlp::operator=(Mlp&&) noexcept = default;

const MlpSpec& Mlp::spec() const { return impl_->spec; }
Device Mlp::device() const { return impl_->device; }
std::size_t Mlp::num_params() const { return impl_->params.numel(); }
Tensor& Mlp::params() { return impl_->params; }
Tensor& Mlp::grads() { return impl_->grads; }

BatchStats Mlp::train_batch(const std::uint8_t* images, const std::int32_t* y, int batch) {
  auto& m = *impl_;
  if (batch <= 0) throw Error("iogrid: train_batch needs at least one example");
  m.load(images, y, batch);
  m.forward(batch);
  const int classes = m.width(m.layers());
  BatchStats s;
  int correct = 0;
  float* dz = f32(m.delta_a);
  s.loss = m.ops->softmax_xent(f32(m.acts.back()), static_cast<const std::int32_t*>(m.labels.raw()), batch, classes, dz,
                               &correct);
  s.correct = correct;
  s.count = batch;
  float* g = f32(m.grads);
  const float* p = f32(m.params);
  for (int i = m.layers() - 1; i >= 0; --i) {
    const int in = m.width(i), out = m.width(i + 1);
    const float* a = f32(m.acts[std::size_t(i)]);
    m.ops->gemm(true, false, in, out, batch, 1.0f, a, dz, 0.0f, g + m.w_off[std::size_t(i)]);
    m.ops->column_sums(dz, g + m.b_off[std::size_t(i)], batch, out);
    if (i == 0) break;
    float* da = dz == f32(m.delta_a) ? f32(m.delta_b) : f32(m.delta_a);
    m.ops->gemm(false, true, batch, in, out, 1.0f, dz, p + m.w_off[std::size_t(i)], 0.0f, da);
    m.ops->relu_backward(da, a, std::size_t(batch) * std::size_t(in));
    dz = da;
  }
  m.ops->synchronize();
  return s;
}

std::vector<std::int32_t> Mlp::predict(const std::uint8_t* images, int batch) {
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

BatchStats Mlp::evaluate(const data::Dataset& d, int batch) {
  if (d.features() != std::size_t(impl_->width(0)))
    throw Error("iogrid: the model takes " + std::to_string(impl_->width(0)) + " features, the dataset has " +
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

std::vector<float> Mlp::weights() const { return impl_->params.to_vector<float>(); }

void Mlp::set_weights(const std::vector<float>& w) {
  auto& m = *impl_;
  if (w.size() != m.params.numel())
    throw Error("iogrid: weights of " + std::to_string(w.size()) + " values for a model of " + std::to_string(m.params.numel()));
  upload(m.params, w.data(), w.size() * 4);
}

// --- optimiser -------------------------------------------------------------------------------------------
struct Optimizer::Impl {
  Mlp::Impl* model;
  OptimizerSpec spec;
  Tensor m1, m2;  // sgd: m1 = velocity; adam: first and second moments
  std::int64_t steps = 0;
};

Optimizer::Optimizer(Mlp& model, OptimizerSpec spec) : impl_(std::make_unique<Impl>()) {
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
