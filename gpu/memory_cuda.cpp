// Device memory through the CUDA runtime (built when CMake finds nvcc). No device, or a driver older than the
// runtime: the calls throw with the CUDA error's text, and cuda_device_count() is 0.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "gpu/memory.hpp"

namespace iogrid::gpu {

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}
void use(int device) { check(cudaSetDevice(device), "cannot select the device"); }
}  // namespace

bool cuda_built() { return true; }

int cuda_device_count(std::string* why) {
  int n = 0;
  auto e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error
    if (why)
      *why = e == cudaErrorInsufficientDriver ? "the NVIDIA driver is older than the CUDA runtime of this build"
                                              : cudaGetErrorString(e);
    return 0;
  }
  return n;
}

int cuda_sm_count(int device) {
  int v = 0;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return v;
}

void select_device(int device) noexcept {
  if (cudaSetDevice(device) != cudaSuccess) (void)cudaGetLastError();
}

void* device_alloc(int device, std::size_t bytes) {
  use(device);
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "out of device memory");
  check(cudaMemset(p, 0, bytes), "memset failed");
  return p;
}

void device_free(int device, void* p) noexcept {
  if (!p) return;
  if (cudaSetDevice(device) == cudaSuccess) (void)cudaFree(p);
}

void copy_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  use(device);
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "host-to-device copy failed");
}

void copy_to_host(int device, void* dst, const void* src, std::size_t bytes) {
  use(device);
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "device-to-host copy failed");
}

void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  use(device);
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "device-to-device copy failed");
}

}  // namespace iogrid::gpu
