// The MLP and its optimisers: gradients against finite differences, learning a generated problem, and
// checkpointable optimiser state.
#include <catch2/catch.hpp>

#include <cmath>
#include <iogrid/nn.hpp>

#include "synthetic.hpp"

using namespace iogrid::nn;

TEST_CASE("MLP gradients match finite differences of the loss (tolerance 2e-2 relative)", "[nn]") {
  Mlp m({.layers = {6, 5, 3}, .seed = 3});
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
    Mlp m({.layers = {32, 16, 4}});
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
    Mlp twin({.layers = {32, 16, 4}});
    twin.set_weights(m.weights());
    Optimizer opt2(twin, {.kind = kind, .lr = kind == "sgd" ? 0.05f : 0.005f});
    opt2.set_state(opt.state(), opt.steps());
    m.train_batch(x, y, 50);
    opt.step();
    twin.train_batch(x, y, 50);
    opt2.step();
    CHECK(m.weights() == twin.weights());
  }
  CHECK_THROWS_AS(Mlp({.layers = {4}}), iogrid::Error);
  Mlp m({.layers = {4, 2}});
  CHECK_THROWS_WITH(Optimizer(m, {.kind = "rmsprop"}), Catch::Contains("unknown optimiser"));
  CHECK_THROWS_WITH(m.evaluate(synthetic(10, 5, 2)), Catch::Contains("takes 4 features"));
}
