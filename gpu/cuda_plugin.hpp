// The CUDA side of the GPU layer as two plugins, built whenever the build has CUDA and loaded at run time on
// first use: libiogrid_cuda.so (the kernels' CUDA twin on cuBLAS, cuBLAS called directly for benchmarks) and
// libiogrid_nccl.so (the NCCL backend of collective groups). Programs that never touch a GPU load neither; a
// GPU machine without NCCL still runs GPU kernels (only NCCL groups fail, saying why); a machine without a
// GPU runs everything else (the same rule as NVML in devices.cpp).
// Where a plugin is looked for, in order: $IOGRID_CUDA_PLUGIN / $IOGRID_NCCL_PLUGIN (a file); <executable's
// folder>/../lib; the executable's folder; the dynamic loader's search path. Each carries an ABI number;
// another number is refused.
#pragma once

#include <cstdint>
#include <string>

#include "gpu/collective/backend.hpp"
#include "gpu/kernels/ops.hpp"

namespace iogrid::gpu {

constexpr int kCudaPluginAbi = 2;

struct CudaPlugin {
  int abi = 0;
  // The kernels on `device` (one per device for the life of the process), nullptr when there is no such device.
  kernels::Ops* (*ops)(int device) = nullptr;
  // Seconds per bf16 GEMM n x n x n (f32 output and accumulation) with cuBLAS called directly, timed with CUDA
  // events over `reps` calls after one warm-up; a and b are host arrays of n x n bf16 bits.
  double (*cublas_bf16_gemm_seconds)(int device, int n, int reps, const std::uint16_t* a,
                                     const std::uint16_t* b) = nullptr;
};

struct NcclPlugin {
  int abi = 0;
  // An NCCL group member (throws CollectiveError on failure); the caller owns the result.
  collective::Backend* (*make_nccl)(collective::Store& store, const std::string& prefix, int rank, int size,
                                    int device, const collective::GroupOptions& o) = nullptr;
};

// The plugins, each loaded once; nullptr when it cannot be loaded, with the reason in `why`.
const CudaPlugin* cuda_plugin(std::string* why = nullptr);
const NcclPlugin* nccl_plugin(std::string* why = nullptr);

}  // namespace iogrid::gpu
