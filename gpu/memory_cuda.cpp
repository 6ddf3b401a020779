// Device memory through the CUDA runtime (built when CMake finds nvcc). No device, or a driver older than the
// runtime: the calls throw with the CUDA error's text, and cuda_device_count() is 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
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

// --- memory shares of fractional workers ---------------------------------------------------------------
namespace {
struct Share {
  int device = -1;
  std::size_t limit = 0;
  std::atomic<std::size_t> used{0};
};
thread_local std::shared_ptr<Share> t_share;
std::mutex g_owned_m;
std::unordered_map<void*, std::pair<std::shared_ptr<Share>, std::size_t>> g_owned;  // allocations under a share

std::string gib(std::size_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(1ull << 30));
  return buf;
}
}  // namespace

void set_thread_memory_share(int device, double fraction) {
  if (device < 0 || fraction <= 0 || fraction >= 1) {
    t_share.reset();
    return;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    (void)cudaGetLastError();
    t_share.reset();
    return;
  }
  auto share = std::make_shared<Share>();
  share->device = device;
  share->limit = static_cast<std::size_t>(fraction * double(prop.totalGlobalMem));
  t_share = std::move(share);
}

void* device_alloc(int device, std::size_t bytes) {
  std::shared_ptr<Share> share = t_share && t_share->device == device ? t_share : nullptr;
  if (share) {
    auto before = share->used.fetch_add(bytes);
    if (before + bytes > share->limit) {
      share->used.fetch_sub(bytes);
      throw std::runtime_error("GPU memory share exceeded on device " + std::to_string(device) + ": asked " +
                               gib(bytes) + " with " + gib(before) + " of this worker's " + gib(share->limit) +
                               " in use (its fraction of the device)");
    }
  }
  void* p = nullptr;
  try {
    use(device);
    check(cudaMalloc(&p, bytes ? bytes : 1), "out of device memory");
    check(cudaMemset(p, 0, bytes), "memset failed");
  } catch (...) {
    if (p) cudaFree(p);
    if (share) share->used.fetch_sub(bytes);
    throw;
  }
  if (share) {
    std::lock_guard<std::mutex> g(g_owned_m);
    g_owned[p] = {std::move(share), bytes};
  }
  return p;
}

void device_free(int device, void* p) noexcept {
  if (!p) return;
  {
    std::lock_guard<std::mutex> g(g_owned_m);
    if (auto it = g_owned.find(p); it != g_owned.end()) {
      it->second.first->used.fetch_sub(it->second.second);
      g_owned.erase(it);
    }
  }
  if (cudaSetDevice(device) == cudaSuccess) (void)cudaFree(p);
}

// --- copies: small ones directly, large ones through pinned staging on a stream -----------------------------
namespace {
constexpr std::size_t kDirect = 1u << 20;   // below this a plain cudaMemcpy
constexpr std::size_t kChunk = 8u << 20;    // staging buffer size (two per thread, used in turn)

// Per thread: two pinned buffers and a stream per device, freed when the thread ends.
struct Staging {
  int device = -1;
  cudaStream_t stream = nullptr;
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  ~Staging() { release(); }
  void release() {
    if (device < 0) return;
    if (cudaSetDevice(device) == cudaSuccess) {
      for (int i = 0; i < 2; ++i) {
        if (done[i]) cudaEventDestroy(done[i]);
        if (buf[i]) cudaFreeHost(buf[i]);
      }
      if (stream) cudaStreamDestroy(stream);
    }
    (void)cudaGetLastError();
    device = -1;
    stream = nullptr;
    buf[0] = buf[1] = nullptr;
    done[0] = done[1] = nullptr;
  }
  void ready(int d) {
    if (device == d) return;
    release();
    use(d);
    device = d;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cannot create a copy stream");
    for (int i = 0; i < 2; ++i) {
      check(cudaHostAlloc(&buf[i], kChunk, cudaHostAllocDefault), "cannot allocate pinned staging memory");
      check(cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming), "cannot create an event");
    }
  }
};
thread_local Staging t_staging;
}  // namespace

void copy_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  use(device);
  if (bytes < kDirect) {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "host-to-device copy failed");
    return;
  }
  auto& st = t_staging;
  st.ready(device);
  // The copy stream does not order itself after kernels on the default stream: wait for them (they may still
  // be writing the source or using the destination).
  check(cudaStreamSynchronize(cudaStreamLegacy), "cannot wait for the device's pending work");
  // Chunk i is copied into pinned buffer i % 2 while the stream still moves chunk i - 1 from the other one.
  std::size_t off = 0;
  for (int i = 0; off < bytes; ++i, off += kChunk) {
    const int b = i % 2;
    const std::size_t n = std::min(kChunk, bytes - off);
    check(cudaEventSynchronize(st.done[b]), "host-to-device copy failed");  // that buffer's previous chunk left
    std::memcpy(st.buf[b], static_cast<const char*>(src) + off, n);
    check(cudaMemcpyAsync(static_cast<char*>(dst) + off, st.buf[b], n, cudaMemcpyHostToDevice, st.stream),
          "host-to-device copy failed");
    check(cudaEventRecord(st.done[b], st.stream), "host-to-device copy failed");
  }
  check(cudaStreamSynchronize(st.stream), "host-to-device copy failed");
}

void copy_to_host(int device, void* dst, const void* src, std::size_t bytes) {
  use(device);
  if (bytes < kDirect) {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "device-to-host copy failed");
    return;
  }
  auto& st = t_staging;
  st.ready(device);
  // The copy stream does not order itself after kernels on the default stream: wait for them (they may still
  // be writing the source or using the destination).
  check(cudaStreamSynchronize(cudaStreamLegacy), "cannot wait for the device's pending work");
  // The stream fills buffer i % 2 with chunk i while the host drains chunk i - 1 from the other one.
  const std::size_t chunks = (bytes + kChunk - 1) / kChunk;
  auto issue = [&](std::size_t i) {
    const std::size_t off = i * kChunk, n = std::min(kChunk, bytes - off);
    check(cudaMemcpyAsync(st.buf[i % 2], static_cast<const char*>(src) + off, n, cudaMemcpyDeviceToHost, st.stream),
          "device-to-host copy failed");
    check(cudaEventRecord(st.done[i % 2], st.stream), "device-to-host copy failed");
  };
  issue(0);
  for (std::size_t i = 0; i < chunks; ++i) {
    if (i + 1 < chunks) issue(i + 1);
    check(cudaEventSynchronize(st.done[i % 2]), "device-to-host copy failed");
    const std::size_t off = i * kChunk, n = std::min(kChunk, bytes - off);
    std::memcpy(static_cast<char*>(dst) + off, st.buf[i % 2], n);
  }
}
void copy_device_to_device(int device, void* dst, const void* src, std::size_t bytes) {
  use(device);
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "device-to-device copy failed");
}

}  // namespace iogrid::gpu
