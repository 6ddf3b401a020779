// `iogrid bench gpu`: the GPU layer's figures. On a machine without a GPU only the CPU-side figure runs
// (collectives through Gloo); the GPU rows say why they are skipped.
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
#include "gpu/devices.hpp"

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

}  // namespace

int run_gpu(const Options& o) {
  auto wanted = [&](const std::string& n) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), n) != o.only.end();
  };
  std::vector<Figure> figs;
  std::string note;
  auto devices = gpu::detect_devices(&note);
  if (devices.empty())
    progress(o, "no GPU on this machine (" + (note.empty() ? std::string("no devices") : note) +
                    "): gemm_task_vs_cublas_ratio, gpu_empty_task_roundtrip_us and verification_seconds are skipped");

  if (wanted("collective_allreduce_vs_gloo_direct_ratio")) {
    const int ranks = 4;
    const std::size_t count = (64u << 20) / sizeof(float);  // 64 MiB of f32
    const int iters = 3;
    Figure ratio{"collective_allreduce_vs_gloo_direct_ratio", 0, "x", true, {}};
    Figure group_bw{"collective_allreduce_busbw_GBps", 0, "GB/s", true, {}};
    Figure direct_bw{"gloo_direct_allreduce_busbw_GBps", 0, "GB/s", true, {}};
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
      ratio.runs.push_back(direct / group);
      group_bw.runs.push_back(bus_bytes * iters / group / 1e9);
      direct_bw.runs.push_back(bus_bytes * iters / direct / 1e9);
      progress(o, "run " + std::to_string(run + 1) + ": group " + std::to_string(group_bw.runs.back()) +
                      " GB/s bus, Gloo direct " + std::to_string(direct_bw.runs.back()) + " GB/s bus, ratio " +
                      std::to_string(ratio.runs.back()));
    }
    for (auto* f : {&ratio, &group_bw, &direct_bw}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  print("gpu", o, figs);
  return 0;
}

}  // namespace iogrid::bench
