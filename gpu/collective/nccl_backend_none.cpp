// A build without CUDA has no NCCL backend.
#include "gpu/collective/nccl_backend.hpp"

namespace iogrid::gpu::collective {

std::unique_ptr<Backend> make_nccl(Store&, const std::string&, int, int, int, const GroupOptions&) { return nullptr; }

}  // namespace iogrid::gpu::collective
