// The entry of libiogrid_nccl.so (gpu/cuda_plugin.hpp): the only symbol the plugin exports.
#include "gpu/cuda_plugin.hpp"

namespace iogrid::gpu::collective {
std::unique_ptr<Backend> make_nccl_impl(Store& store, const std::string& prefix, int rank, int size, int device,
                                        const GroupOptions& o);
}  // namespace iogrid::gpu::collective

extern "C" __attribute__((visibility("default"))) const iogrid::gpu::NcclPlugin* iogrid_nccl_plugin() {
  using namespace iogrid::gpu;
  static const NcclPlugin plugin{
      kCudaPluginAbi,
      [](collective::Store& s, const std::string& prefix, int rank, int size, int device,
         const collective::GroupOptions& o) -> collective::Backend* {
        return collective::make_nccl_impl(s, prefix, rank, size, device, o).release();
      },
  };
  return &plugin;
}
