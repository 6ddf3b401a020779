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

TEST_CASE("bias, column sums, relu and its gradient, sum and scale", "[kernels]") {
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
