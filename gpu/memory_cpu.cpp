// The memory functions of a build without CUDA: there is no device to put a tensor on.
#include <stdexcept>

#include "gpu/memory.hpp"

namespace iogrid::gpu {

namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error("iogrid was built without CUDA (configure with -DIOGRID_CUDA=ON on a machine with nvcc): "
                           "tensors can only live in host memory");
}
}  // namespace

bool cuda_built() { return false; }
int cuda_device_count(std::string* why) {
  if (why) *why = "this build has no CUDA";
  return 0;
}
int cuda_sm_count(int) { return 0; }
void select_device(int) noexcept {}
void set_thread_memory_share(int, double) {}
void* device_alloc(int, std::size_t) { no_cuda(); }
void device_free(int, void*) noexcept {}
void copy_to_device(int, void*, const void*, std::size_t) { no_cuda(); }
void copy_to_host(int, void*, const void*, std::size_t) { no_cuda(); }
void copy_device_to_device(int, void*, const void*, std::size_t) { no_cuda(); }

}  // namespace iogrid::gpu
