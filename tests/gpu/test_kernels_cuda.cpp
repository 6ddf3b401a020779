// The CUDA kernels against the CPU ones (tolerances: GEMM 1e-3 relative, element-wise 1e-5, loss 1e-4;
// normal initialisation 1e-4, as device math functions may differ in the last bits). Skips without a GPU.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <thread>
#include <cmath>
#include <vector>

#include "gpu/collective/nccl_backend.hpp"
#include "gpu/cuda_plugin.hpp"
#include "gpu/kernels/ops.hpp"
#include "gpu/memory.hpp"

using namespace iogrid::gpu::kernels;
namespace gc = iogrid::gpu::collective;

namespace {
// A device buffer filled from / read back to host vectors.
struct DeviceVec {
  float* p = nullptr;
  std::size_t n = 0;
  explicit DeviceVec(const std::vector<float>& host) : n(host.size()) {
    cudaMalloc(&p, n * sizeof(float));
    cudaMemcpy(p, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  }
  ~DeviceVec() { cudaFree(p); }
  std::vector<float> get() const {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
  }
};
}  // namespace

TEST_CASE("a build with CUDA ships the CUDA and NCCL plugins, and they load without a GPU", "[kernels][gpu]") {
  std::string why;
  const auto* plugin = iogrid::gpu::cuda_plugin(&why);
  INFO(why);
  REQUIRE(plugin != nullptr);
  CHECK(plugin->abi == iogrid::gpu::kCudaPluginAbi);
  const auto* nccl = iogrid::gpu::nccl_plugin(&why);
  REQUIRE(nccl != nullptr);
  CHECK(nccl->abi == iogrid::gpu::kCudaPluginAbi);
  if (iogrid::gpu::cuda_device_count() == 0) {
    std::string no_device;
    CHECK(cuda_ops(0, &no_device) == nullptr);
    CHECK(no_device == "no CUDA device 0 on this machine");
    gc::MemoryStore store;  // an NCCL member on a device that is not there: a CollectiveError, not a crash
    CHECK_THROWS_AS(gc::make_nccl(store, "no-gpu", 0, 1, 0, {}), gc::CollectiveError);
  }
}

TEST_CASE("CUDA kernels match the CPU kernels", "[kernels][gpu]") {
  std::string why;
  Ops* gpu = cuda_ops(0, &why);
  if (!gpu) {
    WARN("skipped: " + why + "; the CPU kernels are tested on their own");
    return;
  }
  auto& cpu = cpu_ops();
  const int m = 65, n = 33, k = 129;
  std::vector<float> a(std::size_t(m) * k), b(std::size_t(k) * n), c(std::size_t(m) * n, 0);
  cpu.init_uniform(a.data(), a.size(), -1, 1, 1);
  cpu.init_uniform(b.data(), b.size(), -1, 1, 2);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      DeviceVec da(a), db(b), dc(c);
      gpu->gemm(ta, tb, m, n, k, 1.0f, da.p, db.p, 0.0f, dc.p);
      cudaDeviceSynchronize();
      std::vector<float> ref(c.size());
      cpu.gemm(ta, tb, m, n, k, 1.0f, a.data(), b.data(), 0.0f, ref.data());
      auto got = dc.get();
      for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(got[i] == Approx(ref[i]).epsilon(1e-3).margin(1e-3));
    }
  // Counter-based initialisation: the same numbers on both devices.
  std::vector<float> u(10000), zero(10000, 0);
  cpu.init_uniform(u.data(), u.size(), -2, 3, 77);
  DeviceVec du(zero);
  gpu->init_uniform(du.p, du.n, -2, 3, 77);
  CHECK(du.get() == u);
  std::vector<float> g(10000);
  cpu.init_normal(g.data(), g.size(), 0, 1, 78);
  DeviceVec dg(zero);
  gpu->init_normal(dg.p, dg.n, 0, 1, 78);
  auto gg = dg.get();
  for (std::size_t i = 0; i < g.size(); ++i) REQUIRE(gg[i] == Approx(g[i]).margin(1e-4));
  // Element-wise kernels and the optimisers.
  std::vector<float> x(3000);
  cpu.init_normal(x.data(), x.size(), 0, 1, 5);
  DeviceVec dx(x);
  gpu->relu(dx.p, dx.n);
  auto rx = x;
  cpu.relu(rx.data(), rx.size());
  CHECK(dx.get() == rx);
  CHECK(gpu->sum(dx.p, dx.n) == Approx(cpu.sum(rx.data(), rx.size())).epsilon(1e-5));
  std::vector<float> w = x, gr(x.size(), 0.1f), v(x.size(), 0), m2(x.size(), 0), v2(x.size(), 0);
  DeviceVec dw(w), dgr(gr), dv(v), dm(m2), dv2(v2);
  gpu->adam(dw.p, dgr.p, dm.p, dv2.p, dw.n, 0.01f, 0.9f, 0.999f, 1e-8f, 1);
  cpu.adam(w.data(), gr.data(), m2.data(), v2.data(), w.size(), 0.01f, 0.9f, 0.999f, 1e-8f, 1);
  auto gw = dw.get();
  for (std::size_t i = 0; i < w.size(); ++i) REQUIRE(gw[i] == Approx(w[i]).margin(1e-5));
  // Softmax cross-entropy on 128 rows of 10 classes.
  std::vector<float> logits(1280);
  cpu.init_normal(logits.data(), logits.size(), 0, 2, 9);
  std::vector<std::int32_t> labels(128);
  for (int i = 0; i < 128; ++i) labels[std::size_t(i)] = i % 10;
  std::int32_t* dl = nullptr;
  cudaMalloc(&dl, labels.size() * sizeof(std::int32_t));
  cudaMemcpy(dl, labels.data(), labels.size() * sizeof(std::int32_t), cudaMemcpyHostToDevice);
  DeviceVec dlog(logits), dgrad(std::vector<float>(logits.size(), 0));
  int right_gpu = 0, right_cpu = 0;
  std::vector<float> grad(logits.size());
  float lg = gpu->softmax_xent(dlog.p, dl, 128, 10, dgrad.p, &right_gpu);
  float lc = cpu.softmax_xent(logits.data(), labels.data(), 128, 10, grad.data(), &right_cpu);
  cudaFree(dl);
  CHECK(lg == Approx(lc).epsilon(1e-4));
  CHECK(right_gpu == right_cpu);
  auto gg2 = dgrad.get();
  for (std::size_t i = 0; i < grad.size(); ++i) REQUIRE(gg2[i] == Approx(grad[i]).margin(1e-5));
  // Convolution helpers and pooling on a batch of 3 images 9 x 7 x 4 (odd sizes: pooling drops a row and a column).
  const int B = 3, H = 9, W = 7, C = 4, K = 3;
  std::vector<float> img(std::size_t(B) * H * W * C);
  cpu.init_normal(img.data(), img.size(), 0, 1, 21);
  DeviceVec dimg(img), dcols(std::vector<float>(std::size_t(B) * H * W * K * K * C, 0));
  std::vector<float> cols(dcols.n);
  gpu->im2col(dimg.p, B, H, W, C, K, 1, dcols.p);
  cpu.im2col(img.data(), B, H, W, C, K, 1, cols.data());
  CHECK(dcols.get() == cols);
  DeviceVec dback(std::vector<float>(img.size(), 7));
  std::vector<float> back(img.size());
  gpu->col2im(dcols.p, B, H, W, C, K, 1, dback.p);
  cpu.col2im(cols.data(), B, H, W, C, K, 1, back.data());
  auto gback = dback.get();
  for (std::size_t i = 0; i < back.size(); ++i) REQUIRE(gback[i] == Approx(back[i]).margin(1e-5));
  const std::size_t pooled = std::size_t(B) * (H / 2) * (W / 2) * C;
  DeviceVec dpool(std::vector<float>(pooled, 0)), dgradin(std::vector<float>(img.size(), 5));
  std::int32_t* darg = nullptr;
  cudaMalloc(&darg, pooled * sizeof(std::int32_t));
  std::vector<float> pool(pooled), gradin(img.size());
  std::vector<std::int32_t> arg(pooled), garg(pooled);
  gpu->max_pool(dimg.p, B, H, W, C, 2, dpool.p, darg);
  cpu.max_pool(img.data(), B, H, W, C, 2, pool.data(), arg.data());
  cudaMemcpy(garg.data(), darg, pooled * sizeof(std::int32_t), cudaMemcpyDeviceToHost);
  CHECK(dpool.get() == pool);
  CHECK(garg == arg);
  gpu->max_pool_backward(dpool.p, darg, pooled, dgradin.p, img.size());
  cpu.max_pool_backward(pool.data(), arg.data(), pooled, gradin.data(), img.size());
  cudaFree(darg);
  CHECK(dgradin.get() == gradin);
  // Pixel scaling.
  std::vector<std::uint8_t> px(1000);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 7);
  std::uint8_t* dpx = nullptr;
  cudaMalloc(&dpx, px.size());
  cudaMemcpy(dpx, px.data(), px.size(), cudaMemcpyHostToDevice);
  DeviceVec dscaled(std::vector<float>(px.size(), 0));
  std::vector<float> scaled(px.size());
  gpu->u8_to_f32(dpx, px.size(), 1.0f / 255.0f, dscaled.p);
  cpu.u8_to_f32(px.data(), px.size(), 1.0f / 255.0f, scaled.data());
  cudaFree(dpx);
  CHECK(dscaled.get() == scaled);
}


TEST_CASE("NCCL groups: one member per GPU, sum and mean agree with the arithmetic", "[collective][gpu]") {
  const int gpus = iogrid::gpu::cuda_device_count();
  if (gpus == 0) {
    WARN("skipped: no CUDA device here; the Gloo groups are tested on their own");
    return;
  }
  const int size = std::min(gpus, 8);
  gc::MemoryStore store;
  std::vector<std::thread> members;
  std::vector<float> first(std::size_t(size), -1), mean(std::size_t(size), -1);
  for (int r = 0; r < size; ++r)
    members.emplace_back([&, r] {
      auto b = gc::make_nccl(store, "nccl-test", r, size, r, {});
      std::vector<float> host(1 << 20, float(r + 1));
      DeviceVec d(host);
      b->allreduce(d.p, d.n, gc::DType::f32, gc::ReduceOp::sum);
      first[std::size_t(r)] = d.get()[12345];
      DeviceVec e(host);
      b->allreduce(e.p, e.n, gc::DType::f32, gc::ReduceOp::mean);
      mean[std::size_t(r)] = e.get()[0];
      b->barrier();
    });
  for (auto& t : members) t.join();
  for (int r = 0; r < size; ++r) {
    CHECK(first[std::size_t(r)] == Approx(size * (size + 1) / 2.0));
    CHECK(mean[std::size_t(r)] == Approx((size + 1) / 2.0));
  }
}

TEST_CASE("bf16 GEMM on tensor cores matches the CPU twin (tolerance 2e-3 relative to the row scale)", "[kernels][gpu]") {
  std::string why;
  Ops* gpu = cuda_ops(0, &why);
  if (!gpu) {
    WARN("skipped: " + why);
    return;
  }
  auto& cpu = cpu_ops();
  const int m = 300, n = 200, k = 512;
  std::vector<float> fa(std::size_t(m) * k), fb(std::size_t(k) * n);
  cpu.init_uniform(fa.data(), fa.size(), -1, 1, 11);
  cpu.init_uniform(fb.data(), fb.size(), -1, 1, 12);
  std::vector<std::uint16_t> a(fa.size()), b(fb.size());
  for (std::size_t i = 0; i < fa.size(); ++i) a[i] = to_bf16(fa[i]);
  for (std::size_t i = 0; i < fb.size(); ++i) b[i] = to_bf16(fb[i]);
  std::vector<float> ref(std::size_t(m) * n);
  cpu.gemm_bf16(m, n, k, a.data(), b.data(), ref.data());
  void *da = nullptr, *db = nullptr;
  cudaMalloc(&da, a.size() * 2);
  cudaMalloc(&db, b.size() * 2);
  cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  DeviceVec dc(std::vector<float>(ref.size(), 0));
  gpu->gemm_bf16(m, n, k, static_cast<std::uint16_t*>(da), static_cast<std::uint16_t*>(db), dc.p);
  gpu->synchronize();
  auto got = dc.get();
  cudaFree(da);
  cudaFree(db);
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(got[i] == Approx(ref[i]).margin(2e-3 * std::sqrt(double(k))));
}
