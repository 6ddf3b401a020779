// A build without CUDA has no device kernels.
#include "gpu/kernels/ops.hpp"

namespace iogrid::gpu::kernels {

Ops* cuda_ops(int) { return nullptr; }

}  // namespace iogrid::gpu::kernels
