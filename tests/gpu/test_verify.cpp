// The verification challenge on the CPU implementation: an honest prover passes, cheaters are caught.
#include <catch2/catch.hpp>
#include <chrono>

#include "gpu/kernels/ops.hpp"
#include "gpu/verify/challenge.hpp"

using namespace iogrid::gpu::verify;
using iogrid::gpu::kernels::cpu_ops;

namespace {
std::vector<float> honest_product(const Challenge& c, double* seconds) {
  auto a = matrix_a(c), b = matrix_b(c);
  std::vector<float> out(a.size());
  auto t0 = std::chrono::steady_clock::now();
  cpu_ops().gemm(false, false, c.n, c.n, c.n, 1.0f, a.data(), b.data(), 0.0f, out.data());
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}
// This machine's CPU as the "claimed model", with its throughput measured here.
ModelThroughput cpu_model(double tflops) { return {tflops, tflops * 2}; }
}  // namespace

TEST_CASE("an honest device passes: committed rows check out against the head's own rows", "[verify]") {
  Challenge c{11, 384};
  double secs = 0;
  auto product = honest_product(c, &secs);
  Prover p(c, product, secs);
  auto rows = draw_rows(c.n, 16, 12345);
  REQUIRE(rows.size() == 16);
  const double measured = 2.0 * c.n * c.n * c.n / secs / 1e12;
  auto v = check(c, p.commitment(), rows, p.open(rows), "this-cpu", cpu_model(measured));
  INFO(v.reason);
  CHECK(v.verified);
  CHECK(v.tflops == Approx(measured));
  // With no reference for the model, a correct answer is verified with what was measured.
  CHECK(check(c, p.commitment(), rows, p.open(rows), "unknown-gpu").verified);
}

TEST_CASE("fabricated results are caught: random rows, one wrong element, a commitment changed later", "[verify]") {
  Challenge c{5, 256};
  double secs = 0;
  auto product = honest_product(c, &secs);
  auto rows = draw_rows(c.n, 16, 99);

  std::vector<float> fake(product.size());
  cpu_ops().init_uniform(fake.data(), fake.size(), -9, 9, 3);
  Prover liar(c, fake, secs);
  auto v = check(c, liar.commitment(), rows, liar.open(rows), "this-cpu", cpu_model(1e-6));
  CHECK_FALSE(v.verified);
  CHECK_THAT(v.reason, Catch::StartsWith("wrong answer: C["));

  // A single wrong element is caught when its row is drawn (rows come after the commitment, so a prover
  // cannot know which rows to get right).
  auto almost = product;
  almost[std::size_t(rows[3]) * std::size_t(c.n) + 7] += 5.0f;
  Prover sloppy(c, almost, secs);
  CHECK_FALSE(check(c, sloppy.commitment(), rows, sloppy.open(rows), "this-cpu", cpu_model(1e-6)).verified);

  // Correct rows opened against a commitment to other rows: the Merkle paths do not lead to the root.
  Prover honest(c, product, secs);
  auto openings = honest.open(rows);
  auto v2 = check(c, liar.commitment(), rows, openings, "this-cpu", cpu_model(1e-6));
  CHECK_FALSE(v2.verified);
  CHECK_THAT(v2.reason, Catch::Contains("does not match the committed result"));

  // Fewer or other rows than asked.
  openings.pop_back();
  CHECK_THAT(check(c, honest.commitment(), rows, openings, "this-cpu").reason, Catch::Contains("rows opened"));
}

TEST_CASE("a claimed model the throughput cannot be: too fast, or far too slow", "[verify]") {
  Challenge c{7, 256};
  double secs = 0;
  auto product = honest_product(c, &secs);
  Prover p(c, product, secs);
  auto rows = draw_rows(c.n, 8, 1);
  // A CPU's result claimed as an H100's: far below what an H100 does.
  auto slow = check(c, p.commitment(), rows, p.open(rows), "H100");
  CHECK_FALSE(slow.verified);
  CHECK_THAT(slow.reason, Catch::Contains("far from what a H100 can do"));
  // The same answer with a time no device could have: too fast to be honest.
  Prover quick(c, product, 1e-9);
  auto fast = check(c, quick.commitment(), rows, quick.open(rows), "T4");
  CHECK_FALSE(fast.verified);
  CHECK_THAT(fast.reason, Catch::Contains("too fast to be honest"));
  CHECK(throughput_of("A100")->peak == 312);
  CHECK_FALSE(throughput_of("Imaginary9000"));
}
