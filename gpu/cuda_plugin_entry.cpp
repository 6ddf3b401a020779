// The entry of libiogrid_cuda.so (gpu/cuda_plugin.hpp): the only symbol the plugin exports.
#include "gpu/cuda_plugin.hpp"

namespace iogrid::gpu {
namespace kernels {
Ops* cuda_ops_impl(int device);
double cublas_bf16_gemm_seconds(int device, int n, int reps, const std::uint16_t* a, const std::uint16_t* b);
}  // namespace kernels
namespace collective {
std::unique_ptr<Backend> make_nccl_impl(Store& store, const std::string& prefix, int rank, int size, int device,
                                        const GroupOptions& o);
}  // namespace collective
}  // namespace iogrid::gpu

extern "C" __attribute__((visibility("default"))) const iogrid::gpu::CudaPlugin* iogrid_cuda_plugin() {
  using namespace iogrid::gpu;
  static const CudaPlugin plugin{
      kCudaPluginAbi,
      &kernels::cuda_ops_impl,
      [](collective::Store& s, const std::string& prefix, int rank, int size, int device,
         const collective::GroupOptions& o) -> collective::Backend* {
        return collective::make_nccl_impl(s, prefix, rank, size, device, o).release();
      },
      &kernels::cublas_bf16_gemm_seconds,
  };
  return &plugin;
}
