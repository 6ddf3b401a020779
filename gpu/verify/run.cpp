#include <chrono>
#include <stdexcept>

#include "gpu/kernels/ops.hpp"
#include "gpu/memory.hpp"
#include "gpu/verify/challenge.hpp"

namespace iogrid::gpu::verify {

namespace {

using Clock = std::chrono::steady_clock;

// Device buffers released on every path.
struct DeviceBuffer {
  int device;
  void* p;
  DeviceBuffer(int d, std::size_t bytes) : device(d), p(device_alloc(d, bytes)) {}
  ~DeviceBuffer() { device_free(device, p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

std::shared_ptr<Prover> run_challenge(const Challenge& c, int device, std::string* where) {
  if (c.n <= 0 || c.n > 32768) throw std::invalid_argument("challenge size " + std::to_string(c.n) + " out of range");
  const auto a = matrix_a(c), b = matrix_b(c);
  std::vector<float> product(a.size());
  std::string why;
  kernels::Ops* ops = device >= 0 ? kernels::cuda_ops(device, &why) : nullptr;
  if (!ops) {
    if (where) *where = "cpu (f32)" + (why.empty() ? std::string() : ": " + why);
    auto t0 = Clock::now();
    kernels::cpu_ops().gemm(false, false, c.n, c.n, c.n, 1.0f, a.data(), b.data(), 0.0f, product.data());
    return std::make_shared<Prover>(c, std::move(product), std::chrono::duration<double>(Clock::now() - t0).count());
  }
  if (where) *where = std::string(ops->device()) + " (bf16)";
  const std::size_t elems = a.size();
  const auto a16 = kernels::to_bf16(a), b16 = kernels::to_bf16(b);
  DeviceBuffer da(device, elems * 2), db(device, elems * 2), dc(device, elems * 4);
  copy_to_device(device, da.p, a16.data(), elems * 2);
  copy_to_device(device, db.p, b16.data(), elems * 2);
  auto run = [&] {
    auto t0 = Clock::now();
    ops->gemm_bf16(c.n, c.n, c.n, static_cast<const std::uint16_t*>(da.p), static_cast<const std::uint16_t*>(db.p),
                   static_cast<float*>(dc.p));
    ops->synchronize();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  run();  // warm-up: library heuristics and clocks
  double best = run();
  for (int i = 0; i < 2; ++i) best = std::min(best, run());
  copy_to_host(device, product.data(), dc.p, elems * 4);
  return std::make_shared<Prover>(c, std::move(product), best);
}

}  // namespace iogrid::gpu::verify
