// Verification of a node's GPU: a seeded compute challenge the node runs and times, checked by the head
// without redoing the work.
// Protocol (one challenge):
//   1. head -> node: Challenge {seed, n}. A and B (n x n, f32, uniform in [-1, 1)) are derived from the seed by
//      the counter-based generator of the kernels, so neither side sends them.
//   2. node: C = A x B on the device under test, timed; it commits to C with a Merkle root over the SHA-256 of
//      each row, and sends the root and the time (Commitment).
//   3. head -> node: k row indices drawn at random only now (after the commitment).
//   4. node -> head: those rows with their Merkle paths (Opening).
//   5. head: every path leads to the committed root, and every opened row equals the head's own A[i,:] x B
//      (k matrix-vector products: k x 2n^2 flops instead of 2n^3) within a tolerance for reduced-precision
//      GEMMs; then the throughput 2n^3 / time is compared with what the claimed model can do.
// Verdict rules: a wrong row, a broken path or a wrong row count fails ("wrong answer"); a throughput above
// 1.25 x the claimed model's peak fails ("too fast to be honest": the answer cannot have been computed there);
// below 0.2 x its expected throughput fails ("far from what a <model> can do"). Otherwise the GPU is verified
// with its measured TFLOPS.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace iogrid::gpu::verify {

using Hash = std::array<std::uint8_t, 32>;

struct Challenge {
  std::uint64_t seed = 0;
  int n = 0;
};

// A and B of a challenge (row-major n x n).
std::vector<float> matrix_a(const Challenge& c);
std::vector<float> matrix_b(const Challenge& c);

struct Commitment {
  Hash root{};
  double seconds = 0;  // the GEMM's time on the device
};

// The node's side: C's rows, hashed into a Merkle tree it keeps to open rows later.
class Prover {
 public:
  Prover(const Challenge& c, std::vector<float> product, double seconds);
  const Commitment& commitment() const { return commitment_; }
  struct Opening {
    int row = 0;
    std::vector<float> values;
    std::vector<Hash> path;  // sibling hashes from the leaf up
  };
  std::vector<Opening> open(const std::vector<int>& rows) const;

 private:
  Challenge c_;
  std::vector<float> product_;
  std::vector<std::vector<Hash>> levels_;  // levels_[0]: leaves (row hashes, padded to a power of two)
  Commitment commitment_;
};

// The node's side end to end: the challenge's GEMM on CUDA device `device` through the CUDA plugin (bf16 inputs,
// f32 accumulation, the fastest of 3 timed runs after a warm-up) or, when that device is not there (or device
// < 0), on the CPU in f32; returns the prover holding the committed product. `where` says which ran and why.
std::shared_ptr<Prover> run_challenge(const Challenge& c, int device, std::string* where = nullptr);

// What the claimed model can do (dense GEMM in the challenge's precision), in TFLOPS.
struct ModelThroughput {
  double expected = 0;  // a healthy device reaches about this
  double peak = 0;      // no honest device exceeds this
};
std::optional<ModelThroughput> throughput_of(const std::string& model);  // nullopt: unknown model

struct Verdict {
  bool verified = false;
  double tflops = 0;
  std::string reason;  // why not, or what was measured
};

// The head's side. `rows` are the indices it asked for (drawn after the commitment, e.g. draw_rows()).
Verdict check(const Challenge& c, const Commitment& commitment, const std::vector<int>& rows,
              const std::vector<Prover::Opening>& openings, const std::string& claimed_model,
              std::optional<ModelThroughput> claimed = std::nullopt);
std::vector<int> draw_rows(int n, int k, std::uint64_t entropy);

}  // namespace iogrid::gpu::verify
