// The models (MLP and CNN) and their optimisers: gradients against finite differences, learning a generated problem, and
// checkpointable optimiser state.
#include <catch2/catch.hpp>

#include <cmath>
#include <iogrid/nn.hpp>

#include "gpu/memory.hpp"
#include "synthetic.hpp"

using namespace iogrid::nn;

TEST_CASE("MLP gradients match finite differences of the loss (tolerance 2e-2 relative)", "[nn]") {
  Model m({.layers = {6, 5, 3}, .seed = 3});
  auto d = synthetic(8, 6, 3);
  const auto* x = d.images.data<std::uint8_t>();
  const auto* y = d.labels.data<std::int32_t>();
  m.train_batch(x, y, 8);
  auto g = m.grads().to_vector<float>();
  auto w = m.weights();
  CHECK(w.size() == m.num_params());
  CHECK(m.num_params() == 6 * 5 + 5 + 5 * 3 + 3);
  int checked = 0;
  for (std::size_t i = 0; i < w.size(); i += 3) {
    const float h = 1e-3f;
    auto plus = w, minus = w;
    plus[i] += h;
    minus[i] -= h;
    m.set_weights(plus);
    double lp = m.train_batch(x, y, 8).loss;
    m.set_weights(minus);
    double lm = m.train_batch(x, y, 8).loss;
    double numeric = (lp - lm) / (2 * h);
    INFO("parameter " << i);
    REQUIRE(g[i] == Approx(numeric).epsilon(2e-2).margin(3e-3));
    ++checked;
  }
  CHECK(checked > 10);
}

TEST_CASE("an MLP learns a generated problem with SGD and with Adam, optimiser state restores exactly", "[nn]") {
  auto d = synthetic(2000, 32, 4);
  for (std::string kind : {"sgd", "adam"}) {
    Model m({.layers = {32, 16, 4}});
    Optimizer opt(m, {.kind = kind, .lr = kind == "sgd" ? 0.05f : 0.005f});
    const auto* x = d.images.data<std::uint8_t>();
    const auto* y = d.labels.data<std::int32_t>();
    for (int epoch = 0; epoch < 3; ++epoch)
      for (int at = 0; at + 50 <= 2000; at += 50) {
        m.train_batch(x + std::size_t(at) * 32, y + at, 50);
        opt.step();
      }
    INFO(kind);
    CHECK(m.evaluate(d).accuracy() > 0.95);
    // The same update from a restored state gives the same weights.
    Model twin({.layers = {32, 16, 4}});
    twin.set_weights(m.weights());
    Optimizer opt2(twin, {.kind = kind, .lr = kind == "sgd" ? 0.05f : 0.005f});
    opt2.set_state(opt.state(), opt.steps());
    m.train_batch(x, y, 50);
    opt.step();
    twin.train_batch(x, y, 50);
    opt2.step();
    CHECK(m.weights() == twin.weights());
  }
  CHECK_THROWS_AS(Model({.layers = {4}}), iogrid::Error);
  Model m({.layers = {4, 2}});
  CHECK_THROWS_WITH(Optimizer(m, {.kind = "rmsprop"}), Catch::Contains("unknown optimiser"));
  CHECK_THROWS_WITH(m.evaluate(synthetic(10, 5, 2)), Catch::Contains("takes 4 features"));
}

TEST_CASE("CNN gradients match finite differences of the loss, through convolution, pooling and dense layers", "[nn][cnn]") {
  // 6x6x2 images -> conv 3 (3x3, pool 2) -> 3x3x3 -> conv 4 (3x3, no pool) -> 36 -> 5 -> 3 classes.
  auto spec = cnn({6, 6, 2}, {{.channels = 3, .kernel = 3, .pool = 2}, {.channels = 4, .kernel = 3, .pool = 1}}, {5, 3}, 5);
  CHECK(spec.layers == std::vector<int>{36, 5, 3});
  CHECK(spec.features() == 72);
  CHECK(spec.describe() == "conv3k3p2-conv4k3p1-36-5-3");
  Model m(spec);
  CHECK(m.num_params() == (9 * 2 * 3 + 3) + (9 * 3 * 4 + 4) + (36 * 5 + 5) + (5 * 3 + 3));
  auto d = synthetic(8, 72, 3);
  const auto* x = d.images.data<std::uint8_t>();
  const auto* y = d.labels.data<std::int32_t>();
  m.train_batch(x, y, 8);
  auto g = m.grads().to_vector<float>();
  auto w = m.weights();
  // Central differences with a step of 1e-3; where that step reaches a kink (a ReLU input or a pooling window's
  // runner-up that close; a conv bias moves hundreds of values at once) a step of 3e-4 is tried as well.
  auto numeric = [&](std::size_t i, float h) {
    auto plus = w, minus = w;
    plus[i] += h;
    minus[i] -= h;
    m.set_weights(plus);
    const double lp = m.train_batch(x, y, 8).loss;
    m.set_weights(minus);
    const double lm = m.train_batch(x, y, 8).loss;
    return (lp - lm) / (2 * h);
  };
  auto close = [](double analytic, double num) { return std::abs(analytic - num) <= 2e-2 * std::abs(num) + 3e-3; };
  int smaller_step = 0, nonzero_conv = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    INFO("parameter " << i);
    if (!close(g[i], numeric(i, 1e-3f))) {
      ++smaller_step;
      REQUIRE(close(g[i], numeric(i, 3e-4f)));
    }
    if (i < 57 + 112 && std::abs(g[i]) > 1e-3) ++nonzero_conv;
  }
  CHECK(smaller_step < int(w.size()) / 20);
  CHECK(nonzero_conv > 50);  // the conv blocks do get gradient (a broken backward would leave them at 0)
}

TEST_CASE("a small CNN learns a generated image problem, and bad CNN specs are refused with the reason", "[nn][cnn]") {
  // 8x8 images; the class lights every pixel f with f % 4 == class (vertical stripes at a class-specific phase).
  auto d = synthetic(1200, 64, 4);
  auto spec = cnn({8, 8, 1}, {{.channels = 8, .kernel = 3, .pool = 2}}, {16, 4});
  Model m(spec);
  Optimizer opt(m, {.kind = "sgd", .lr = 0.05f, .momentum = 0.9f});
  const auto* x = d.images.data<std::uint8_t>();
  const auto* y = d.labels.data<std::int32_t>();
  const double before = m.evaluate(d).accuracy();
  for (int epoch = 0; epoch < 3; ++epoch)
    for (int at = 0; at + 40 <= 1200; at += 40) {
      m.train_batch(x + std::size_t(at) * 64, y + at, 40);
      opt.step();
    }
  INFO("accuracy before " << before);
  CHECK(m.evaluate(d).accuracy() > 0.95);

  CHECK(small_cnn().layers == std::vector<int>{7 * 7 * 32, 128, 10});
  CHECK(Model(small_cnn()).num_params() == (9 * 16 + 16) + (9 * 16 * 32 + 32) + (1568 * 128 + 128) + (128 * 10 + 10));
  auto wrong = small_cnn();
  wrong.layers[0] = 784;
  CHECK_THROWS_WITH(Model(wrong), Catch::Contains("give 1568 features (7x7x32), but layers[0] is 784"));
  CHECK_THROWS_WITH(cnn({28, 28, 1}, {{.channels = 4, .kernel = 2}}, {10}), Catch::Contains("odd kernel size"));
  CHECK_THROWS_WITH(cnn({4, 4, 1}, {{.pool = 2}, {.pool = 2}, {.pool = 2}}, {10}), Catch::Contains("conv block 3 pools a 1x1 input away"));
  CHECK_THROWS_WITH(cnn({28, 28}, {{}}, {10}), Catch::Contains("{height, width, channels}"));
  auto image_only = mlp({784, 10});
  image_only.image = {28, 28, 1};
  CHECK_THROWS_WITH(Model(image_only), Catch::Contains("only used with conv blocks"));
  CHECK_THROWS_WITH(m.evaluate(synthetic(10, 784, 4)), Catch::Contains("takes 64 features"));
}

TEST_CASE("a model and its optimiser on a GPU follow the CPU ones step for step (MLP and CNN)", "[nn][gpu]") {
  if (iogrid::gpu::cuda_device_count() == 0) {
    WARN("skipped: no CUDA device here; the CPU model is tested on its own");
    return;
  }
  auto d = synthetic(256, 64, 4);
  const auto* x = d.images.data<std::uint8_t>();
  const auto* y = d.labels.data<std::int32_t>();
  for (const auto& spec : {mlp({64, 32, 4}), cnn({8, 8, 1}, {{.channels = 8, .kernel = 3, .pool = 2}}, {16, 4})}) {
    INFO(spec.describe());
    Model cpu(spec), gpu(spec, iogrid::Device::cuda(0));
    CHECK(gpu.weights() == cpu.weights());  // the same counter-based initialisation
    Optimizer oc(cpu, {.kind = "adam", .lr = 0.005f}), og(gpu, {.kind = "adam", .lr = 0.005f});
    for (int at = 0; at + 32 <= 256; at += 32) {
      auto sc = cpu.train_batch(x + std::size_t(at) * 64, y + at, 32);
      auto sg = gpu.train_batch(x + std::size_t(at) * 64, y + at, 32);
      REQUIRE(sg.loss == Approx(sc.loss).epsilon(1e-3));
      oc.step();
      og.step();
    }
    auto wc = cpu.weights(), wg = gpu.weights();
    for (std::size_t i = 0; i < wc.size(); ++i) REQUIRE(wg[i] == Approx(wc[i]).margin(1e-3));
    CHECK(gpu.predict(x, 64) == cpu.predict(x, 64));
  }
}
