// The entry of libiogrid_cuda.so (gpu/cuda_plugin.hpp): the only symbol the plugin exports.
#include "gpu/cuda_plugin.hpp"

namespace iogrid::gpu::kernels {
Ops* cuda_ops_impl(int device);
double cublas_bf16_gemm_seconds(int device, int n, int reps, const std::uint16_t* a, const std::uint16_t* b);
}  // namespace iogrid::gpu::kernels

extern "C" __attribute__((visibility("default"))) const iogrid::gpu::CudaPlugin* iogrid_cuda_plugin() {
  using namespace iogrid::gpu;
  static const CudaPlugin plugin{kCudaPluginAbi, &kernels::cuda_ops_impl, &kernels::cublas_bf16_gemm_seconds};
  return &plugin;
}
