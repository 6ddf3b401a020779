// `iogrid bench gpu`: the GPU layer's figures. On a machine without a GPU only the CPU-side figures run
// (allreduce through the group's Gloo, local and ring backends against Gloo called directly); the GPU rows say why
// they are skipped.
#include <gloo/allreduce.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/hash_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <thread>
#include <vector>

#include "bench/report.hpp"
#include "gpu/collective/backend.hpp"
#include "gpu/collective/nccl_backend.hpp"
#include "gpu/cuda_plugin.hpp"
#include "gpu/devices.hpp"
#include "gpu/memory.hpp"
#include "gpu/verify/challenge.hpp"
#include "iogrid/iogrid.hpp"
#include "iogrid/tensor.hpp"

namespace iogrid::bench {

namespace {

using Clock = std::chrono::steady_clock;
namespace gc = iogrid::gpu::collective;

// Runs body(rank) on `ranks` threads at once and returns the slowest member's seconds for `iters` calls.
double timed(int ranks, int iters, const std::function<std::function<void()>(int)>& setup) {
  std::vector<double> secs(static_cast<std::size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      auto step = setup(r);  // rendezvous + warm-up
      step();
      auto t0 = Clock::now();
      for (int i = 0; i < iters; ++i) step();
      secs[static_cast<std::size_t>(r)] = std::chrono::duration<double>(Clock::now() - t0).count();
    });
  for (auto& t : threads) t.join();
  return *std::max_element(secs.begin(), secs.end());
}

// The bf16 operands of the GEMM figure: the same numbers for the task and for cuBLAS called directly.
std::vector<std::uint16_t> bf16_matrix(int n, std::uint64_t seed) {
  std::vector<float> f(std::size_t(n) * std::size_t(n));
  gpu::kernels::cpu_ops().init_uniform(f.data(), f.size(), -1, 1, seed);
  return gpu::kernels::to_bf16(f);
}

// A GPU worker actor holding the operands on its device; run(reps) does reps bf16 GEMMs and waits for them.
class GemmActor {
 public:
  GemmActor(int n, std::uint64_t seed) : n_(n) {
    auto gpus = iogrid::current_gpus();
    if (gpus.empty()) throw std::runtime_error("the GEMM actor holds no GPU");
    const auto dev = iogrid::Device::cuda(gpus.front().device);
    std::string why;
    ops_ = gpu::kernels::cuda_ops(dev.index, &why);
    if (!ops_) throw std::runtime_error(why);
    const std::int64_t elems = std::int64_t(n) * n;
    a_ = iogrid::Tensor::from(bf16_matrix(n, seed), {elems}).to(dev);
    b_ = iogrid::Tensor::from(bf16_matrix(n, seed + 1), {elems}).to(dev);
    c_ = iogrid::Tensor({elems}, iogrid::DType::f32, dev);
    run(1);  // warm-up
  }
  int run(int reps) {
    for (int i = 0; i < reps; ++i)
      ops_->gemm_bf16(n_, n_, n_, static_cast<const std::uint16_t*>(a_.raw()), static_cast<const std::uint16_t*>(b_.raw()),
                      static_cast<float*>(c_.raw()));
    ops_->synchronize();
    return reps;
  }

 private:
  int n_;
  gpu::kernels::Ops* ops_ = nullptr;
  iogrid::Tensor a_, b_, c_;
};

void empty_gpu_task() {}

}  // namespace
}  // namespace iogrid::bench

IOGRID_REMOTE(&iogrid::bench::GemmActor::run);
IOGRID_REMOTE(iogrid::bench::empty_gpu_task);

namespace iogrid::bench {

namespace {

// The GPU rows: bf16 GEMM as a task against cuBLAS directly, the empty GPU task's round trip, verification.
void gpu_rows(const Options& o, const std::vector<gpu::DeviceInfo>& devices, std::vector<Figure>& figs,
              const std::function<bool(const std::string&)>& wanted) {
  std::string why;
  const auto* plugin = gpu::cuda_plugin(&why);
  if (!plugin || !gpu::kernels::cuda_ops(0, &why)) {
    progress(o, "GPU rows skipped: " + why);
    return;
  }
  const std::string device = devices.front().model + " (" + devices.front().full_name + ")";
  iogrid::init();
  if (wanted("gemm_task_vs_cublas_ratio")) {
    const int n = 8192, reps = 20;
    const double flops = 2.0 * n * double(n) * n;
    Figure ratio{"gemm_task_vs_cublas_ratio", 0, "x", true, {}};
    Figure direct_tf{"gemm_bf16_cublas_direct_tflops", 0, "TFLOP/s", true, {}};
    Figure task_tf{"gemm_bf16_task_tflops", 0, "TFLOP/s", true, {}};
    const auto a = bf16_matrix(n, 1), b = bf16_matrix(n, 2);
    auto actor = iogrid::actor<GemmActor>(n, std::uint64_t(1)).options({.num_gpus = 1}).remote();
    (void)iogrid::get(actor.call(&GemmActor::run).remote(1));  // constructed and warm
    for (int run = 0; run < o.runs; ++run) {
      const double direct = plugin->cublas_bf16_gemm_seconds(0, n, reps, a.data(), b.data());
      auto t0 = Clock::now();
      (void)iogrid::get(actor.call(&GemmActor::run).remote(reps));
      const double task = secs(t0, Clock::now()) / reps;
      direct_tf.runs.push_back(flops / direct / 1e12);
      task_tf.runs.push_back(flops / task / 1e12);
      ratio.runs.push_back(direct / task);
      progress(o, "run " + std::to_string(run + 1) + " on " + device + ": cuBLAS direct " +
                      std::to_string(direct_tf.runs.back()) + " TFLOP/s, as an iogrid task " +
                      std::to_string(task_tf.runs.back()) + " TFLOP/s, ratio " + std::to_string(ratio.runs.back()));
    }
    for (auto* f : {&ratio, &direct_tf, &task_tf}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  if (wanted("gpu_empty_task_roundtrip_us")) {
    Figure rt{"gpu_empty_task_roundtrip_us", 0, "us", false, {}};
    for (int run = 0; run < o.runs; ++run) {
      std::vector<double> us;
      for (int i = 0; i < 2000; ++i) {
        auto t0 = Clock::now();
        iogrid::get(iogrid::task(empty_gpu_task).options({.num_gpus = 1}).remote());
        us.push_back(secs(t0, Clock::now()) * 1e6);
      }
      rt.runs.push_back(median(us));
      progress(o, "run " + std::to_string(run + 1) + ": empty GPU task round trip, median of 2000: " +
                      std::to_string(rt.runs.back()) + " us");
    }
    rt.value = median(rt.runs);
    figs.push_back(rt);
  }
  iogrid::shutdown();
  if (wanted("verification_seconds")) {
    Figure took{"verification_seconds", 0, "s", false, {}};
    Figure ok{"verification_verdict_correct", 0, "bool", true, {}};
    for (int run = 0; run < o.runs; ++run) {
      gpu::verify::Challenge c{0x5eed0000ull + std::uint64_t(run), 8192};
      auto t0 = Clock::now();
      std::string where;
      auto prover = gpu::verify::run_challenge(c, 0, &where);
      auto rows = gpu::verify::draw_rows(c.n, 16, std::uint64_t(run) * 7919 + 1);
      auto verdict = gpu::verify::check(c, prover->commitment(), rows, prover->open(rows), devices.front().model);
      took.runs.push_back(secs(t0, Clock::now()));
      ok.runs.push_back(verdict.verified ? 1 : 0);
      progress(o, "run " + std::to_string(run + 1) + ": verification on " + where + " of " + device + ": " +
                      std::to_string(took.runs.back()) + " s, " + (verdict.verified ? "verified: " : "refused: ") +
                      verdict.reason);
    }
    took.value = median(took.runs);
    ok.value = median(ok.runs);
    figs.push_back(took);
    figs.push_back(ok);
  }
}

// NCCL allreduce of 256 MiB f32, one member (thread) per GPU present, buffers on the devices: bus bandwidth as
// nccl-tests reports it (2(n-1)/n x bytes / time). With one GPU there is no bus traffic: the algorithm
// bandwidth is reported instead, and the bus figure is skipped saying so.
void nccl_rows(const Options& o, int gpus, std::vector<Figure>& figs) {
  std::string why;
  if (!gpu::nccl_plugin(&why)) {
    progress(o, "nccl_allreduce_busbw_GBps skipped: " + why);
    return;
  }
  const int ranks = std::min(gpus, 8);
  const std::size_t count = (256u << 20) / sizeof(float);
  const int iters = 20;
  Figure bus{"nccl_allreduce_busbw_GBps", 0, "GB/s", true, {}};
  Figure alg{"nccl_allreduce_algbw_GBps", 0, "GB/s", true, {}};
  const double bytes = double(count * sizeof(float));
  for (int run = 0; run < o.runs; ++run) {
    gc::MemoryStore store;
    std::vector<void*> bufs(static_cast<std::size_t>(ranks), nullptr);
    double secs = timed(ranks, iters, [&](int r) -> std::function<void()> {
      std::shared_ptr<gc::Backend> b = gc::make_nccl(store, "bench-nccl-" + std::to_string(run), r, ranks, r, {});
      bufs[static_cast<std::size_t>(r)] = gpu::device_alloc(r, count * sizeof(float));
      auto* data = bufs[static_cast<std::size_t>(r)];
      return [b, data, count] { b->allreduce(data, count, gc::DType::f32, gc::ReduceOp::sum); };
    });
    for (int r = 0; r < ranks; ++r) gpu::device_free(r, bufs[static_cast<std::size_t>(r)]);
    alg.runs.push_back(bytes * iters / secs / 1e9);
    if (ranks > 1) bus.runs.push_back(2.0 * (ranks - 1) / ranks * bytes * iters / secs / 1e9);
    progress(o, "NCCL allreduce over " + std::to_string(ranks) + " GPU(s), run " + std::to_string(run + 1) + ": " +
                    std::to_string(alg.runs.back()) + " GB/s algorithm bandwidth");
  }
  alg.value = median(alg.runs);
  figs.push_back(alg);
  if (ranks > 1) {
    bus.value = median(bus.runs);
    figs.push_back(bus);
  } else {
    progress(o, "nccl_allreduce_busbw_GBps: one GPU here, so an allreduce moves nothing over a bus (algorithm bandwidth only)");
  }
}

}  // namespace

int run_gpu(const Options& o) {
  auto wanted = selection(o, "gpu", {
        "collective_allreduce_vs_gloo_direct_ratio",
        "collective_allreduce_local_vs_gloo_direct_ratio",
        "collective_allreduce_ring_vs_gloo_direct_ratio",
        "gemm_task_vs_cublas_ratio",
        "gpu_empty_task_roundtrip_us",
        "verification_seconds",
        "nccl_allreduce_busbw_GBps"});
  std::vector<Figure> figs;
  std::string note;
  auto devices = gpu::detect_devices(&note);
  if (devices.empty())
    progress(o, "no GPU on this machine (" + (note.empty() ? std::string("no devices") : note) +
                    "): gemm_task_vs_cublas_ratio, gpu_empty_task_roundtrip_us, verification_seconds and "
                    "nccl_allreduce_busbw_GBps are skipped");

  if (wanted("collective_allreduce_vs_gloo_direct_ratio") || wanted("collective_allreduce_local_vs_gloo_direct_ratio") ||
      wanted("collective_allreduce_ring_vs_gloo_direct_ratio")) {
    const int ranks = 4;
    const std::size_t count = (64u << 20) / sizeof(float);  // 64 MiB of f32
    const int iters = 3;
    Figure ratio{"collective_allreduce_vs_gloo_direct_ratio", 0, "x", true, {}};
    Figure group_bw{"collective_allreduce_busbw_GBps", 0, "GB/s", true, {}};
    Figure direct_bw{"gloo_direct_allreduce_busbw_GBps", 0, "GB/s", true, {}};
    Figure local_ratio{"collective_allreduce_local_vs_gloo_direct_ratio", 0, "x", true, {}};
    Figure local_bw{"collective_allreduce_local_busbw_GBps", 0, "GB/s", true, {}};
    Figure ring_ratio{"collective_allreduce_ring_vs_gloo_direct_ratio", 0, "x", true, {}};
    Figure ring_bw{"collective_allreduce_ring_busbw_GBps", 0, "GB/s", true, {}};
    const double bus_bytes = 2.0 * (ranks - 1) / ranks * double(count * sizeof(float));
    for (int run = 0; run < o.runs; ++run) {
      // Gloo called directly: its own in-memory store, TCP device, ring allreduce of sums.
      gloo::rendezvous::HashStore hash;
      std::vector<std::vector<float>> bufs(ranks, std::vector<float>(count, 1.0f));
      double direct = timed(ranks, iters, [&](int r) -> std::function<void()> {
        auto dev = gloo::transport::tcp::CreateDevice(gloo::transport::tcp::attr("127.0.0.1"));
        auto ctx = std::make_shared<gloo::rendezvous::Context>(r, ranks);
        ctx->connectFullMesh(hash, dev);
        auto* data = bufs[static_cast<std::size_t>(r)].data();
        return [ctx, dev, data, count] {
          gloo::AllreduceOptions opts(ctx);
          opts.setInput(data, count);
          opts.setOutput(data, count);
          opts.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
          gloo::allreduce(opts);
        };
      });
      // The same through the group interface.
      gc::MemoryStore store;
      double group = timed(ranks, iters, [&](int r) -> std::function<void()> {
        std::shared_ptr<gc::Backend> b = gc::make_gloo(store, "bench-" + std::to_string(run), r, ranks, {});
        auto* data = bufs[static_cast<std::size_t>(r)].data();
        return [b, data, count] { b->allreduce(data, count, gc::DType::f32, gc::ReduceOp::sum); };
      });
      // The local backend (what a group of threads in one process takes by default), same buffers.
      double local = timed(ranks, iters, [&](int r) -> std::function<void()> {
        std::shared_ptr<gc::Backend> b = gc::make_local(store, "bench-local-" + std::to_string(run), r, ranks, {});
        auto* data = bufs[static_cast<std::size_t>(r)].data();
        return [b, data, count] { b->allreduce(data, count, gc::DType::f32, gc::ReduceOp::sum); };
      });
      // The ring (what members behind NATs form; here every link dialled directly over loopback).
      double ring = timed(ranks, iters, [&](int r) -> std::function<void()> {
        std::shared_ptr<gc::Backend> b = gc::make_ring(store, "bench-ring-" + std::to_string(run), r, ranks, {});
        auto* data = bufs[static_cast<std::size_t>(r)].data();
        return [b, data, count] { b->allreduce(data, count, gc::DType::f32, gc::ReduceOp::sum); };
      });
      ring_ratio.runs.push_back(direct / ring);
      ring_bw.runs.push_back(bus_bytes * iters / ring / 1e9);
      ratio.runs.push_back(direct / group);
      local_ratio.runs.push_back(direct / local);
      group_bw.runs.push_back(bus_bytes * iters / group / 1e9);
      direct_bw.runs.push_back(bus_bytes * iters / direct / 1e9);
      local_bw.runs.push_back(bus_bytes * iters / local / 1e9);
      progress(o, "run " + std::to_string(run + 1) + ": group (Gloo) " + std::to_string(group_bw.runs.back()) +
                      " GB/s bus, Gloo direct " + std::to_string(direct_bw.runs.back()) + " GB/s bus, ratio " +
                      std::to_string(ratio.runs.back()) + "; group (local) " + std::to_string(local_bw.runs.back()) +
                      " GB/s bus, ratio " + std::to_string(local_ratio.runs.back()) + "; group (ring) " +
                      std::to_string(ring_bw.runs.back()) + " GB/s bus, ratio " + std::to_string(ring_ratio.runs.back()));
    }
    for (auto* f : {&ratio, &group_bw, &direct_bw, &local_ratio, &local_bw, &ring_ratio, &ring_bw}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  if (!devices.empty()) gpu_rows(o, devices, figs, wanted);
  if (!devices.empty() && wanted("nccl_allreduce_busbw_GBps")) nccl_rows(o, static_cast<int>(devices.size()), figs);
  print("gpu", o, figs);
  return 0;
}

}  // namespace iogrid::bench
