// Ops: the numeric kernels the workloads need, one interface with a CPU implementation (here, OpenBLAS for
// GEMM) and a CUDA twin (cuBLAS and own kernels) behind it. Buffers are raw pointers to f32 (int32 labels) in
// the memory of the implementation's device; matrices are row-major.
// Rules shared by every implementation (tests hold the CUDA twin to the CPU results within stated tolerances):
// - gemm: C = alpha * op(A) * op(B) + beta * C, op = transpose when asked; A is MxK (KxM when transposed),
//   B is KxN (NxK when transposed), C is MxN.
// - softmax_xent: per row, p = softmax(logits); loss = mean over rows of -log p[label]; dlogits = (p - onehot)/rows.
// - init_uniform / init_normal are counter-based (splitmix64 of seed and element index), so every
//   implementation draws the same numbers for the same seed, in any order and on any device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// The generator below is compiled for the host and, under nvcc, for the device too (one definition for both).
#ifdef __CUDACC__
#define IOGRID_HOST_DEVICE __host__ __device__
#else
#define IOGRID_HOST_DEVICE
#endif

namespace iogrid::gpu::kernels {

class Ops {
 public:
  virtual ~Ops() = default;
  virtual const char* device() const = 0;  // "cpu", "cuda:0", ...

  virtual void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, const float* b,
                    float beta, float* c) = 0;
  // C (f32, MxN) = A (bf16 bits, MxK) x B (bf16 bits, KxN), accumulated in f32 (tensor cores on a GPU; the CPU
  // twin widens to f32 and calls the f32 GEMM).
  virtual void gemm_bf16(int m, int n, int k, const std::uint16_t* a, const std::uint16_t* b, float* c) = 0;
  // Waits until every kernel issued so far has finished (GEMMs may run asynchronously).
  virtual void synchronize() = 0;
  // y[r][c] += bias[c] for an rows x cols matrix.
  virtual void bias_add(float* y, const float* bias, int rows, int cols) = 0;
  // db[c] = sum over rows of dy[r][c].
  virtual void column_sums(const float* dy, float* db, int rows, int cols) = 0;
  // y[i] = x[i] * by: u8 pixels to scaled floats (x in the implementation's memory too).
  virtual void u8_to_f32(const std::uint8_t* x, std::size_t n, float by, float* y) = 0;
  virtual void relu(float* x, std::size_t n) = 0;
  // dx = dy where the forward output y was positive, else 0 (in place on dy).
  virtual void relu_backward(float* dy, const float* y, std::size_t n) = 0;
  // Returns the mean loss; writes dlogits (may alias logits) and, when not null, the number of rows whose
  // arg-max equals the label to *correct.
  virtual float softmax_xent(const float* logits, const std::int32_t* labels, int rows, int classes, float* dlogits,
                             int* correct) = 0;
  // Convolution helpers on NHWC images (batch x height x width x channels, row-major), square k x k kernels,
  // stride 1, `pad` zeros on every side: the output is oh = h + 2*pad - k + 1 by ow = w + 2*pad - k + 1.
  // im2col: cols [batch*oh*ow, k*k*c], row (b, oy, ox), column (ky*k + kx)*c + ci, so a convolution is one GEMM
  // of cols with weights [k*k*c, out_channels] giving NHWC output.
  virtual void im2col(const float* x, int batch, int h, int w, int c, int k, int pad, float* cols) = 0;
  // The adjoint of im2col: dx[b][y][x][ci] = the sum of the cols entries im2col copied x[b][y][x][ci] into
  // (overwrites dx).
  virtual void col2im(const float* cols, int batch, int h, int w, int c, int k, int pad, float* dx) = 0;
  // Max-pooling over non-overlapping p x p windows (stride p; rows and columns that fill no window are dropped):
  // y [batch, h/p, w/p, c]; argmax[i] = the index into x of the value y[i] took (the first one on ties).
  virtual void max_pool(const float* x, int batch, int h, int w, int c, int p, float* y, std::int32_t* argmax) = 0;
  // dx (n_in values) = 0, then dx[argmax[i]] = dy[i] for the n_out pooled values.
  virtual void max_pool_backward(const float* dy, const std::int32_t* argmax, std::size_t n_out, float* dx,
                                 std::size_t n_in) = 0;
  virtual float sum(const float* x, std::size_t n) = 0;
  virtual void scale(float* x, std::size_t n, float by) = 0;
  // v = momentum * v + (g + weight_decay * w); w -= lr * v.
  virtual void sgd_momentum(float* w, const float* g, float* v, std::size_t n, float lr, float momentum,
                            float weight_decay) = 0;
  // Adam with bias correction; `step` counts from 1.
  virtual void adam(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1, float beta2,
                    float eps, int step) = 0;
  virtual void init_uniform(float* w, std::size_t n, float lo, float hi, std::uint64_t seed) = 0;
  virtual void init_normal(float* w, std::size_t n, float mean, float stddev, std::uint64_t seed) = 0;
};

// The CPU implementation (always there).
Ops& cpu_ops();
// Threads the CPU GEMM may use (process-wide; 0: the BLAS library's default). Data-parallel workers that each
// stand for one CPU set 1.
void set_cpu_threads(int n);
// The CUDA implementation on `device` (from the CUDA plugin, gpu/cuda_plugin.hpp), or nullptr when the plugin
// is not there or the machine has no such device; `why` says which.
Ops* cuda_ops(int device, std::string* why = nullptr);

// The counter-based generator every implementation uses: a uniform float in [0, 1) for (seed, index).
IOGRID_HOST_DEVICE inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
IOGRID_HOST_DEVICE inline float uniform01(std::uint64_t seed, std::uint64_t index) {
  return float(splitmix64(seed * 0x100000001b3ull ^ index) >> 40) * (1.0f / 16777216.0f);
}

// bf16 <-> f32 (round to nearest even; NaN stays NaN).
inline std::uint16_t to_bf16(float f) {
  std::uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40);
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline std::vector<std::uint16_t> to_bf16(const std::vector<float>& f) {
  std::vector<std::uint16_t> h(f.size());
  for (std::size_t i = 0; i < f.size(); ++i) h[i] = to_bf16(f[i]);
  return h;
}
inline float from_bf16(std::uint16_t h) {
  std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

}  // namespace iogrid::gpu::kernels
