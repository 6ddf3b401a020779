#include "gpu/verify/challenge.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "gpu/kernels/ops.hpp"

namespace iogrid::gpu::verify {

namespace {

Hash sha(const void* a, std::size_t na, const void* b = nullptr, std::size_t nb = 0) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, a, na);
  if (b) EVP_DigestUpdate(ctx, b, nb);
  Hash h;
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, h.data(), &len);
  EVP_MD_CTX_free(ctx);
  return h;
}

Hash leaf(int row, const float* values, int n) {
  std::uint32_t r = static_cast<std::uint32_t>(row);
  return sha(&r, sizeof r, values, sizeof(float) * std::size_t(n));
}

Hash parent(const Hash& l, const Hash& r) { return sha(l.data(), l.size(), r.data(), r.size()); }

std::string fmt(double v, int digits = 3) {
  std::ostringstream os;
  os.precision(digits);
  os << v;
  return os.str();
}

}  // namespace

std::vector<float> matrix_a(const Challenge& c) {
  std::vector<float> a(std::size_t(c.n) * std::size_t(c.n));
  kernels::cpu_ops().init_uniform(a.data(), a.size(), -1, 1, c.seed * 2 + 1);
  return a;
}

std::vector<float> matrix_b(const Challenge& c) {
  std::vector<float> b(std::size_t(c.n) * std::size_t(c.n));
  kernels::cpu_ops().init_uniform(b.data(), b.size(), -1, 1, c.seed * 2 + 2);
  return b;
}

Prover::Prover(const Challenge& c, std::vector<float> product, double seconds) : c_(c), product_(std::move(product)) {
  std::size_t width = 1;
  while (width < std::size_t(c.n)) width *= 2;
  std::vector<Hash> leaves(width, Hash{});
  for (int r = 0; r < c.n && std::size_t(r + 1) * std::size_t(c.n) <= product_.size(); ++r)
    leaves[std::size_t(r)] = leaf(r, product_.data() + std::size_t(r) * std::size_t(c.n), c.n);
  levels_.push_back(std::move(leaves));
  while (levels_.back().size() > 1) {
    const auto& below = levels_.back();
    std::vector<Hash> up(below.size() / 2);
    for (std::size_t i = 0; i < up.size(); ++i) up[i] = parent(below[2 * i], below[2 * i + 1]);
    levels_.push_back(std::move(up));
  }
  commitment_.root = levels_.back().front();
  commitment_.seconds = seconds;
}

std::vector<Prover::Opening> Prover::open(const std::vector<int>& rows) const {
  std::vector<Opening> out;
  for (int r : rows) {
    Opening o;
    o.row = r;
    if (r >= 0 && r < c_.n && std::size_t(r + 1) * std::size_t(c_.n) <= product_.size())
      o.values.assign(product_.begin() + std::ptrdiff_t(std::size_t(r) * std::size_t(c_.n)),
                      product_.begin() + std::ptrdiff_t(std::size_t(r + 1) * std::size_t(c_.n)));
    std::size_t idx = std::size_t(std::max(r, 0));
    for (std::size_t l = 0; l + 1 < levels_.size(); ++l) {
      o.path.push_back(levels_[l][idx ^ 1]);
      idx /= 2;
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::optional<ModelThroughput> throughput_of(const std::string& model) {
  // Dense bf16 GEMM peaks (vendor figures, without sparsity) and about 70% of them as what a healthy device
  // reaches on an 8192^3 GEMM.
  static const std::map<std::string, double> peak = {
      {"H200", 989}, {"H100", 989}, {"A100", 312}, {"L40S", 362}, {"L40", 181}, {"A10", 125}, {"A10G", 70},
      {"V100", 125}, {"T4", 65},    {"RTX4090", 165}, {"RTX3090", 71}, {"L4", 121}};
  auto it = peak.find(model);
  if (it == peak.end()) return std::nullopt;
  return ModelThroughput{0.7 * it->second, it->second};
}

std::vector<int> draw_rows(int n, int k, std::uint64_t entropy) {
  std::set<int> rows;
  for (std::uint64_t i = 0; int(rows.size()) < std::min(k, n); ++i)
    rows.insert(int(kernels::splitmix64(entropy ^ (i * 0x9e3779b97f4a7c15ull)) % std::uint64_t(n)));
  return {rows.begin(), rows.end()};
}

Verdict check(const Challenge& c, const Commitment& commitment, const std::vector<int>& rows,
              const std::vector<Prover::Opening>& openings, const std::string& claimed_model,
              std::optional<ModelThroughput> claimed) {
  Verdict v;
  if (openings.size() != rows.size()) {
    v.reason = "wrong answer: " + std::to_string(openings.size()) + " rows opened, " + std::to_string(rows.size()) + " asked";
    return v;
  }
  std::size_t depth = 0;
  for (std::size_t w = 1; w < std::size_t(c.n); w *= 2) ++depth;
  const auto a = matrix_a(c);
  const auto b = matrix_b(c);
  const float tolerance = 0.02f * std::sqrt(float(c.n));  // reduced-precision GEMMs stay far inside this
  std::vector<float> expect(std::size_t(c.n));
  for (std::size_t k = 0; k < rows.size(); ++k) {
    const auto& o = openings[k];
    if (o.row != rows[k] || o.values.size() != std::size_t(c.n) || o.path.size() != depth) {
      v.reason = "wrong answer: row " + std::to_string(rows[k]) + " was not opened as asked";
      return v;
    }
    Hash h = leaf(o.row, o.values.data(), c.n);
    std::size_t idx = std::size_t(o.row);
    for (const auto& sibling : o.path) {
      h = (idx % 2 == 0) ? parent(h, sibling) : parent(sibling, h);
      idx /= 2;
    }
    if (h != commitment.root) {
      v.reason = "wrong answer: row " + std::to_string(o.row) + " does not match the committed result";
      return v;
    }
    // The head's own row: A[row, :] x B (one vector-matrix product).
    kernels::cpu_ops().gemm(false, false, 1, c.n, c.n, 1.0f, a.data() + std::size_t(o.row) * std::size_t(c.n), b.data(),
                            0.0f, expect.data());
    for (int j = 0; j < c.n; ++j)
      if (!(std::fabs(o.values[std::size_t(j)] - expect[std::size_t(j)]) <= tolerance)) {
        v.reason = "wrong answer: C[" + std::to_string(o.row) + "][" + std::to_string(j) + "] = " +
                   fmt(o.values[std::size_t(j)], 6) + ", expected " + fmt(expect[std::size_t(j)], 6);
        return v;
      }
  }
  if (!(commitment.seconds > 0)) {
    v.reason = "wrong answer: no time was measured";
    return v;
  }
  v.tflops = 2.0 * double(c.n) * double(c.n) * double(c.n) / commitment.seconds / 1e12;
  auto model = claimed ? claimed : throughput_of(claimed_model);
  if (!model) {
    v.verified = true;
    v.reason = "answer correct, " + fmt(v.tflops) + " TFLOPS (no reference throughput for model '" + claimed_model + "')";
    return v;
  }
  if (v.tflops > 1.25 * model->peak) {
    v.reason = "too fast to be honest: " + fmt(v.tflops) + " TFLOPS, above what a " + claimed_model + " can do (" +
               fmt(model->peak) + " peak)";
    return v;
  }
  if (v.tflops < 0.2 * model->expected) {
    v.reason = "far from what a " + claimed_model + " can do: " + fmt(v.tflops) + " TFLOPS measured, about " +
               fmt(model->expected) + " expected";
    return v;
  }
  v.verified = true;
  v.reason = "verified " + claimed_model + ": " + fmt(v.tflops) + " TFLOPS";
  return v;
}

}  // namespace iogrid::gpu::verify
