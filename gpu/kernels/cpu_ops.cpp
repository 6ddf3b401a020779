#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>
#include <limits>

#include "gpu/kernels/ops.hpp"

namespace iogrid::gpu::kernels {

namespace {

constexpr std::size_t kPadding = ~std::size_t(0);

// The im2col layout (ops.hpp) walked in order: f(at, pixel) for each c-long segment of cols, `at` its offset in
// cols and `pixel` the offset in x of the NHWC pixel it holds (kPadding for the zero border).
template <class F>
void each_patch_pixel(int batch, int h, int w, int c, int k, int pad, F&& f) {
  const int oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1;
  std::size_t at = 0;
  for (int b = 0; b < batch; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx, at += std::size_t(c)) {
            const int iy = oy + ky - pad, ix = ox + kx - pad;
            const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
            f(at, inside ? ((std::size_t(b) * std::size_t(h) + std::size_t(iy)) * std::size_t(w) + std::size_t(ix)) * std::size_t(c)
                         : kPadding);
          }
}

class CpuOps final : public Ops {
 public:
  const char* device() const override { return "cpu"; }

  void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, const float* b, float beta,
            float* c) override {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
                ta ? m : k, b, tb ? k : n, beta, c, n);
  }
  void gemm_bf16(int m, int n, int k, const std::uint16_t* a, const std::uint16_t* b, float* c) override {
    std::vector<float> fa(std::size_t(m) * std::size_t(k)), fb(std::size_t(k) * std::size_t(n));
    for (std::size_t i = 0; i < fa.size(); ++i) fa[i] = from_bf16(a[i]);
    for (std::size_t i = 0; i < fb.size(); ++i) fb[i] = from_bf16(b[i]);
    gemm(false, false, m, n, k, 1.0f, fa.data(), fb.data(), 0.0f, c);
  }
  void synchronize() override {}

  void bias_add(float* y, const float* bias, int rows, int cols) override {
    for (int r = 0; r < rows; ++r) {
      float* row = y + std::size_t(r) * std::size_t(cols);
      for (int c = 0; c < cols; ++c) row[c] += bias[c];
    }
  }

  void column_sums(const float* dy, float* db, int rows, int cols) override {
    std::fill(db, db + cols, 0.0f);
    for (int r = 0; r < rows; ++r) {
      const float* row = dy + std::size_t(r) * std::size_t(cols);
      for (int c = 0; c < cols; ++c) db[c] += row[c];
    }
  }

  void u8_to_f32(const std::uint8_t* x, std::size_t n, float by, float* y) override {
    for (std::size_t i = 0; i < n; ++i) y[i] = float(x[i]) * by;
  }

  void relu(float* x, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : 0.0f;
  }

  void relu_backward(float* dy, const float* y, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i)
      if (!(y[i] > 0)) dy[i] = 0;
  }

  float softmax_xent(const float* logits, const std::int32_t* labels, int rows, int classes, float* dlogits,
                     int* correct) override {
    double loss = 0;
    int right = 0;
    const float inv_rows = 1.0f / float(rows);
    for (int r = 0; r < rows; ++r) {
      const float* x = logits + std::size_t(r) * std::size_t(classes);
      float* d = dlogits + std::size_t(r) * std::size_t(classes);
      int arg = 0;
      float mx = x[0];
      for (int c = 1; c < classes; ++c)
        if (x[c] > mx) mx = x[c], arg = c;
      double z = 0;
      for (int c = 0; c < classes; ++c) z += std::exp(double(x[c] - mx));
      const int label = labels[r];
      loss += -(double(x[label] - mx) - std::log(z));
      right += arg == label ? 1 : 0;
      for (int c = 0; c < classes; ++c) {
        float p = float(std::exp(double(x[c] - mx)) / z);
        d[c] = (p - (c == label ? 1.0f : 0.0f)) * inv_rows;
      }
    }
    if (correct) *correct = right;
    return float(loss / rows);
  }

  void im2col(const float* x, int batch, int h, int w, int c, int k, int pad, float* cols) override {
    each_patch_pixel(batch, h, w, c, k, pad, [&](std::size_t at, std::size_t pixel) {
      if (pixel == kPadding) std::fill_n(cols + at, c, 0.0f);
      else std::copy_n(x + pixel, c, cols + at);
    });
  }

  void col2im(const float* cols, int batch, int h, int w, int c, int k, int pad, float* dx) override {
    std::fill_n(dx, std::size_t(batch) * std::size_t(h) * std::size_t(w) * std::size_t(c), 0.0f);
    each_patch_pixel(batch, h, w, c, k, pad, [&](std::size_t at, std::size_t pixel) {
      if (pixel == kPadding) return;
      for (int ci = 0; ci < c; ++ci) dx[pixel + std::size_t(ci)] += cols[at + std::size_t(ci)];
    });
  }

  void max_pool(const float* x, int batch, int h, int w, int c, int p, float* y, std::int32_t* argmax) override {
    const int oh = h / p, ow = w / p;
    std::size_t o = 0;
    for (int b = 0; b < batch; ++b)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox, o += std::size_t(c))
          for (int dy = 0; dy < p; ++dy)
            for (int dx = 0; dx < p; ++dx) {
              const std::size_t at = ((std::size_t(b) * h + oy * p + dy) * w + ox * p + dx) * std::size_t(c);
              for (int ci = 0; ci < c; ++ci)
                if ((dy == 0 && dx == 0) || x[at + ci] > y[o + ci]) {
                  y[o + ci] = x[at + ci];
                  argmax[o + ci] = std::int32_t(at + ci);
                }
            }
  }

  void max_pool_backward(const float* dy, const std::int32_t* argmax, std::size_t n_out, float* dx,
                         std::size_t n_in) override {
    std::fill(dx, dx + n_in, 0.0f);
    for (std::size_t i = 0; i < n_out; ++i) dx[argmax[i]] = dy[i];
  }

  float sum(const float* x, std::size_t n) override {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += x[i];
    return float(s);
  }

  void scale(float* x, std::size_t n, float by) override { cblas_sscal(static_cast<int>(n), by, x, 1); }

  void sgd_momentum(float* w, const float* g, float* v, std::size_t n, float lr, float momentum,
                    float weight_decay) override {
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = momentum * v[i] + g[i] + weight_decay * w[i];
      w[i] -= lr * v[i];
    }
  }

  void adam(float* w, const float* g, float* m, float* v, std::size_t n, float lr, float beta1, float beta2, float eps,
            int step) override {
    const float c1 = 1.0f - std::pow(beta1, float(step)), c2 = 1.0f - std::pow(beta2, float(step));
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
    }
  }

  void init_uniform(float* w, std::size_t n, float lo, float hi, std::uint64_t seed) override {
    for (std::size_t i = 0; i < n; ++i) w[i] = lo + (hi - lo) * uniform01(seed, i);
  }

  void init_normal(float* w, std::size_t n, float mean, float stddev, std::uint64_t seed) override {
    // Box-Muller on a pair of counter-based uniforms per element.
    for (std::size_t i = 0; i < n; ++i) {
      float u1 = std::max(uniform01(seed, 2 * i), std::numeric_limits<float>::min());
      float u2 = uniform01(seed, 2 * i + 1);
      w[i] = mean + stddev * std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864f * u2);
    }
  }
};

}  // namespace

Ops& cpu_ops() {
  static CpuOps ops;
  return ops;
}

void set_cpu_threads(int n) { openblas_set_num_threads(n > 0 ? n : openblas_get_num_procs()); }

}  // namespace iogrid::gpu::kernels
