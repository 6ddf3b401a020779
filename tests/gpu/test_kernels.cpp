// The CPU implementation of the kernels against plain reference loops and known values.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gpu/kernels/ops.hpp"

using namespace iogrid::gpu::kernels;

namespace {
// Reference C = A' B' in plain loops (row-major, ' = transposed when asked).
std::vector<float> reference_gemm(bool ta, bool tb, int m, int n, int k, const std::vector<float>& a,
                                  const std::vector<float>& b) {
  std::vector<float> c(std::size_t(m) * std::size_t(n), 0.0f);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) {
        float x = ta ? a[std::size_t(p) * m + i] : a[std::size_t(i) * k + p];
        float y = tb ? b[std::size_t(j) * k + p] : b[std::size_t(p) * n + j];
        s += double(x) * double(y);
      }
      c[std::size_t(i) * n + j] = float(s);
    }
  return c;
}
}  // namespace

TEST_CASE("gemm matches plain loops for every transpose combination (tolerance 1e-4 relative)", "[kernels]") {
  auto& ops = cpu_ops();
  const int m = 37, n = 23, k = 51;
  std::vector<float> a(std::size_t(m) * k), b(std::size_t(k) * n);
  ops.init_uniform(a.data(), a.size(), -1, 1, 1);
  ops.init_uniform(b.data(), b.size(), -1, 1, 2);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::vector<float> c(std::size_t(m) * n, 5.0f);
      ops.gemm(ta, tb, m, n, k, 1.0f, a.data(), b.data(), 0.0f, c.data());
      auto ref = reference_gemm(ta, tb, m, n, k, a, b);
      for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(c[i] == Approx(ref[i]).epsilon(1e-4).margin(1e-5));
      // alpha and beta
      std::vector<float> d = c;
      ops.gemm(ta, tb, m, n, k, 2.0f, a.data(), b.data(), 1.0f, d.data());
      REQUIRE(d[7] == Approx(3 * ref[7]).epsilon(1e-4).margin(1e-5));
    }
}

TEST_CASE("bf16: conversion rounds to nearest even, the bf16 GEMM equals the f32 GEMM of the widened inputs", "[kernels]") {
  CHECK(from_bf16(to_bf16(1.0f)) == 1.0f);
  CHECK(from_bf16(to_bf16(-2.5f)) == -2.5f);
  CHECK(to_bf16(1.0f + 1.0f / 256) == to_bf16(1.0f));          // halfway: ties to even (down)
  CHECK(to_bf16(1.0f + 3.0f / 256) == to_bf16(1.0f + 1.0f / 64));  // halfway: ties to even (up)
  CHECK(std::isnan(from_bf16(to_bf16(std::nanf("")))));
  auto& ops = cpu_ops();
  const int m = 9, n = 7, k = 33;
  std::vector<float> fa(std::size_t(m) * k), fb(std::size_t(k) * n);
  ops.init_uniform(fa.data(), fa.size(), -1, 1, 3);
  ops.init_uniform(fb.data(), fb.size(), -1, 1, 4);
  std::vector<std::uint16_t> a(fa.size()), b(fb.size());
  for (std::size_t i = 0; i < fa.size(); ++i) fa[i] = from_bf16(a[i] = to_bf16(fa[i]));
  for (std::size_t i = 0; i < fb.size(); ++i) fb[i] = from_bf16(b[i] = to_bf16(fb[i]));
  std::vector<float> c(std::size_t(m) * n);
  ops.gemm_bf16(m, n, k, a.data(), b.data(), c.data());
  auto ref = reference_gemm(false, false, m, n, k, fa, fb);
  for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(c[i] == Approx(ref[i]).epsilon(1e-4).margin(1e-5));
}

TEST_CASE("softmax cross-entropy: known values and a gradient that matches finite differences", "[kernels]") {
  auto& ops = cpu_ops();
  std::vector<float> equal{0.3f, 0.3f};
  std::vector<std::int32_t> label{1};
  std::vector<float> d(2);
  int correct = -1;
  CHECK(ops.softmax_xent(equal.data(), label.data(), 1, 2, d.data(), &correct) == Approx(std::log(2.0f)));
  CHECK(d[0] == Approx(0.5f));
  CHECK(d[1] == Approx(-0.5f));
  const int rows = 4, classes = 5;
  std::vector<float> x(rows * classes);
  ops.init_normal(x.data(), x.size(), 0, 2, 9);
  std::vector<std::int32_t> labels{0, 3, 4, 1};
  std::vector<float> grad(x.size());
  float base = ops.softmax_xent(x.data(), labels.data(), rows, classes, grad.data(), &correct);
  CHECK(base > 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto y = x;
    const float h = 1e-3f;
    y[i] += h;
    std::vector<float> scratch(x.size());
    float up = ops.softmax_xent(y.data(), labels.data(), rows, classes, scratch.data(), nullptr);
    y[i] -= 2 * h;
    float down = ops.softmax_xent(y.data(), labels.data(), rows, classes, scratch.data(), nullptr);
    REQUIRE(grad[i] == Approx((up - down) / (2 * h)).margin(2e-3));
  }
}

TEST_CASE("bias, column sums, relu and its gradient, sum, scale and pixel scaling", "[kernels]") {
  auto& ops = cpu_ops();
  std::vector<float> y{1, -2, 3, -4, 5, -6};  // 2 x 3
  std::vector<float> bias{1, 1, 10};
  ops.bias_add(y.data(), bias.data(), 2, 3);
  CHECK(y == std::vector<float>{2, -1, 13, -3, 6, 4});
  std::vector<float> db(3);
  ops.column_sums(y.data(), db.data(), 2, 3);
  CHECK(db == std::vector<float>{-1, 5, 17});
  ops.relu(y.data(), y.size());
  CHECK(y == std::vector<float>{2, 0, 13, 0, 6, 4});
  std::vector<float> dy(6, 1.0f);
  ops.relu_backward(dy.data(), y.data(), dy.size());
  CHECK(dy == std::vector<float>{1, 0, 1, 0, 1, 1});
  CHECK(ops.sum(y.data(), y.size()) == Approx(25));
  ops.scale(y.data(), y.size(), 0.5f);
  CHECK(y[2] == Approx(6.5f));
  std::vector<std::uint8_t> pixels{0, 51, 255};
  std::vector<float> scaled(3);
  ops.u8_to_f32(pixels.data(), 3, 1.0f / 255.0f, scaled.data());
  CHECK(scaled == std::vector<float>{0.0f, 51 * (1.0f / 255.0f), 255 * (1.0f / 255.0f)});
}

TEST_CASE("convolution by im2col and GEMM equals a direct convolution, and col2im is im2col's adjoint", "[kernels]") {
  auto& ops = cpu_ops();
  const int batch = 2, h = 5, w = 4, c = 3, k = 3, pad = 1, out = 2;  // 'same' padding: 5 x 4 output
  std::vector<float> x(std::size_t(batch) * h * w * c), wt(std::size_t(k) * k * c * out);
  ops.init_uniform(x.data(), x.size(), -1, 1, 11);
  ops.init_uniform(wt.data(), wt.size(), -1, 1, 12);
  std::vector<float> cols(std::size_t(batch) * h * w * k * k * c), y(std::size_t(batch) * h * w * out);
  ops.im2col(x.data(), batch, h, w, c, k, pad, cols.data());
  ops.gemm(false, false, batch * h * w, out, k * k * c, 1.0f, cols.data(), wt.data(), 0.0f, y.data());
  for (int b = 0; b < batch; ++b)
    for (int oy = 0; oy < h; ++oy)
      for (int ox = 0; ox < w; ++ox)
        for (int o = 0; o < out; ++o) {
          double s = 0;
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx)
              for (int ci = 0; ci < c; ++ci) {
                const int iy = oy + ky - pad, ix = ox + kx - pad;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                s += double(x[((std::size_t(b) * h + iy) * w + ix) * c + ci]) *
                     double(wt[(std::size_t(ky * k + kx) * c + ci) * out + o]);
              }
          REQUIRE(y[((std::size_t(b) * h + oy) * w + ox) * out + o] == Approx(s).margin(1e-5));
        }
  // <im2col(x), g> == <x, col2im(g)> for any g.
  std::vector<float> g(cols.size()), back(x.size());
  ops.init_uniform(g.data(), g.size(), -1, 1, 13);
  ops.col2im(g.data(), batch, h, w, c, k, pad, back.data());
  double lhs = 0, rhs = 0;
  for (std::size_t i = 0; i < cols.size(); ++i) lhs += double(cols[i]) * g[i];
  for (std::size_t i = 0; i < x.size(); ++i) rhs += double(x[i]) * back[i];
  CHECK(lhs == Approx(rhs).epsilon(1e-5));
  // 'valid' convolution (no padding): a 3 x 2 output.
  std::vector<float> valid(std::size_t(batch) * 3 * 2 * k * k * c);
  ops.im2col(x.data(), batch, h, w, c, k, 0, valid.data());
  CHECK(valid[0] == x[0]);                          // first window starts at (0, 0)
  CHECK(valid.back() == x.back());                  // last window ends at the last pixel
}

TEST_CASE("max-pooling keeps each window's maximum and routes its gradient there only", "[kernels]") {
  auto& ops = cpu_ops();
  // One image 4 x 5 x 1 (the last column fills no 2 x 2 window and is dropped) -> 2 x 2.
  std::vector<float> x{1, 2, 5, 3, 9,  //
                       4, 0, 1, 1, 9,  //
                       -1, -2, 7, 7, 9,  //
                       -3, -4, 0, 6, 9};
  std::vector<float> y(4);
  std::vector<std::int32_t> arg(4);
  ops.max_pool(x.data(), 1, 4, 5, 1, 2, y.data(), arg.data());
  CHECK(y == std::vector<float>{4, 5, -1, 7});
  CHECK(arg == std::vector<std::int32_t>{5, 2, 10, 12});  // ties (7, 7): the first
  std::vector<float> dx(x.size(), 42.0f);
  ops.max_pool_backward(std::vector<float>{1, 2, 3, 4}.data(), arg.data(), 4, dx.data(), dx.size());
  std::vector<float> want(x.size(), 0.0f);
  want[5] = 1, want[2] = 2, want[10] = 3, want[12] = 4;
  CHECK(dx == want);
  // Channels pool independently.
  std::vector<float> two{1, 8, 2, 7, 3, 6, 4, 5};  // 2 x 2 x 2
  std::vector<float> y2(2);
  std::vector<std::int32_t> a2(2);
  ops.max_pool(two.data(), 1, 2, 2, 2, 2, y2.data(), a2.data());
  CHECK(y2 == std::vector<float>{4, 8});
  CHECK(a2 == std::vector<std::int32_t>{6, 1});
}

TEST_CASE("SGD with momentum and Adam follow their update rules", "[kernels]") {
  auto& ops = cpu_ops();
  std::vector<float> w{1, 1}, g{0.5f, -1}, v{0, 0};
  ops.sgd_momentum(w.data(), g.data(), v.data(), 2, 0.1f, 0.9f, 0.0f);
  ops.sgd_momentum(w.data(), g.data(), v.data(), 2, 0.1f, 0.9f, 0.0f);
  // v1 = g, v2 = 0.9 g + g = 1.9 g; w = 1 - 0.1 (g + 1.9 g) = 1 - 0.29 g
  CHECK(w[0] == Approx(1 - 0.29f * 0.5f));
  CHECK(w[1] == Approx(1 + 0.29f));
  std::vector<float> aw{1, 1}, m{0, 0}, av{0, 0};
  ops.adam(aw.data(), g.data(), m.data(), av.data(), 2, 0.01f, 0.9f, 0.999f, 1e-8f, 1);
  // The first bias-corrected step moves each weight by lr in the direction against its gradient's sign.
  CHECK(aw[0] == Approx(1 - 0.01f));
  CHECK(aw[1] == Approx(1 + 0.01f));
}

TEST_CASE("initialisation is reproducible from its seed and has the asked distribution", "[kernels]") {
  auto& ops = cpu_ops();
  const std::size_t n = 200000;
  std::vector<float> a(n), b(n), c(n);
  ops.init_normal(a.data(), n, 0, 1, 42);
  ops.init_normal(b.data(), n, 0, 1, 42);
  ops.init_normal(c.data(), n, 0, 1, 43);
  CHECK(a == b);
  CHECK(a != c);
  double mean = 0, sq = 0;
  for (float x : a) mean += x, sq += double(x) * x;
  mean /= double(n);
  CHECK(mean == Approx(0).margin(0.01));
  CHECK(std::sqrt(sq / double(n) - mean * mean) == Approx(1).margin(0.01));
  ops.init_uniform(a.data(), n, -0.5f, 2.0f, 7);
  float lo = a[0], hi = a[0];
  for (float x : a) lo = std::min(lo, x), hi = std::max(hi, x);
  CHECK(lo >= -0.5f);
  CHECK(hi < 2.0f);
  CHECK(ops.sum(a.data(), n) / float(n) == Approx(0.75f).margin(0.01));
}

TEST_CASE("the kernels compose into training: softmax regression learns a separable problem", "[kernels]") {
  // 3 classes, points around three centres in 2-D; one linear layer trained with SGD reaches >= 95%.
  auto& ops = cpu_ops();
  const int rows = 300, features = 2, classes = 3;
  std::vector<float> x(rows * features), noise(rows * features);
  std::vector<std::int32_t> y(rows);
  ops.init_normal(noise.data(), noise.size(), 0, 0.4f, 5);
  const float centres[3][2] = {{2, 0}, {-1, 2}, {-1, -2}};
  for (int r = 0; r < rows; ++r) {
    y[std::size_t(r)] = r % 3;
    for (int f = 0; f < features; ++f) x[std::size_t(r * features + f)] = centres[r % 3][f] + noise[std::size_t(r * features + f)];
  }
  std::vector<float> w(features * classes), b(classes, 0.0f), vw(w.size(), 0), vb(classes, 0);
  ops.init_normal(w.data(), w.size(), 0, 0.1f, 1);
  std::vector<float> logits(rows * classes), dw(w.size()), db(classes);
  int correct = 0;
  for (int step = 0; step < 100; ++step) {
    ops.gemm(false, false, rows, classes, features, 1.0f, x.data(), w.data(), 0.0f, logits.data());
    ops.bias_add(logits.data(), b.data(), rows, classes);
    ops.softmax_xent(logits.data(), y.data(), rows, classes, logits.data(), &correct);
    ops.gemm(true, false, features, classes, rows, 1.0f, x.data(), logits.data(), 0.0f, dw.data());
    ops.column_sums(logits.data(), db.data(), rows, classes);
    ops.sgd_momentum(w.data(), dw.data(), vw.data(), w.size(), 0.5f, 0.9f, 0.0f);
    ops.sgd_momentum(b.data(), db.data(), vb.data(), b.size(), 0.5f, 0.9f, 0.0f);
  }
  CHECK(double(correct) / rows >= 0.95);
}
