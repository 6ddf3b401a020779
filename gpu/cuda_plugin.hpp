// The CUDA side of the GPU layer as a plugin: libiogrid_cuda.so (the cuBLAS kernels, the NCCL backend of
// collective groups, cuBLAS called directly for benchmarks) is built whenever the build has CUDA and loaded at
// run time, on first use. Programs that never touch a GPU never load cuBLAS or NCCL, and a machine without them
// runs everything else (the same rule as NVML in devices.cpp).
// Where it is looked for, in order: $IOGRID_CUDA_PLUGIN (a file); <executable's folder>/../lib; the executable's
// folder; the dynamic loader's search path. The plugin carries an ABI number; another number is refused.
#pragma once

#include <cstdint>
#include <string>

#include "gpu/collective/backend.hpp"
#include "gpu/kernels/ops.hpp"

namespace iogrid::gpu {

constexpr int kCudaPluginAbi = 1;

struct CudaPlugin {
  int abi = 0;
  // The kernels on `device` (one per device for the life of the process), nullptr when there is no such device.
  kernels::Ops* (*ops)(int device) = nullptr;
  // An NCCL group member (throws CollectiveError on failure); the caller owns the result.
  collective::Backend* (*make_nccl)(collective::Store& store, const std::string& prefix, int rank, int size,
                                    int device, const collective::GroupOptions& o) = nullptr;
  // Seconds per bf16 GEMM n x n x n (f32 output and accumulation) with cuBLAS called directly, timed with CUDA
  // events over `reps` calls after one warm-up; a and b are host arrays of n x n bf16 bits.
  double (*cublas_bf16_gemm_seconds)(int device, int n, int reps, const std::uint16_t* a,
                                     const std::uint16_t* b) = nullptr;
};

// The plugin, loaded once; nullptr when it cannot be loaded, with the reason in `why`.
const CudaPlugin* cuda_plugin(std::string* why = nullptr);

}  // namespace iogrid::gpu
