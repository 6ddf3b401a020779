#include "gpu/devices.hpp"

#include <dlfcn.h>

#include <sstream>

namespace iogrid::gpu {

namespace {
// The few NVML entry points used, declared here so no NVML header is needed at build time.
using nvmlDevice_t = void*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
using InitFn = int (*)();
using CountFn = int (*)(unsigned*);
using HandleFn = int (*)(unsigned, nvmlDevice_t*);
using NameFn = int (*)(nvmlDevice_t, char*, unsigned);
using MemFn = int (*)(nvmlDevice_t, NvmlMemory*);
using CcFn = int (*)(nvmlDevice_t, int*, int*);
}  // namespace

std::string short_model(const std::string& full_name) {
  std::istringstream in(full_name);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const auto& w = words[i];
    if (w == "NVIDIA" || w == "GeForce" || w == "Tesla" || w == "Quadro") continue;
    if (w == "RTX" || w == "GTX") {
      out = w + (i + 1 < words.size() ? words[i + 1] : "");
      return out;
    }
    return w;  // "H100", "A100-SXM4-40GB" -> first model word
  }
  return full_name.empty() ? "unknown" : full_name;
}

std::vector<DeviceInfo> detect_devices(std::string* note) {
  std::vector<DeviceInfo> out;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    if (note) *note = "no NVIDIA driver found (libnvidia-ml.so.1 not loadable): this node has no GPUs";
    return out;
  }
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "nvmlInit_v2"));
  auto count = reinterpret_cast<CountFn>(dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<HandleFn>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto name = reinterpret_cast<NameFn>(dlsym(lib, "nvmlDeviceGetName"));
  auto mem = reinterpret_cast<MemFn>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  auto cc = reinterpret_cast<CcFn>(dlsym(lib, "nvmlDeviceGetCudaComputeCapability"));
  auto uuid = reinterpret_cast<NameFn>(dlsym(lib, "nvmlDeviceGetUUID"));
  unsigned n = 0;
  if (!init || !count || !handle || !name || !mem || init() != 0 || count(&n) != 0) {
    if (note) *note = "the NVIDIA driver's NVML did not initialise: this node has no GPUs";
    return out;
  }
  for (unsigned i = 0; i < n; ++i) {
    nvmlDevice_t d = nullptr;
    if (handle(i, &d) != 0) continue;
    DeviceInfo info;
    info.index = static_cast<int>(i);
    char buf[128] = {};
    if (name(d, buf, sizeof buf) == 0) info.full_name = buf;
    info.model = short_model(info.full_name);
    NvmlMemory m{};
    if (mem(d, &m) == 0) info.memory_gib = double(m.total) / double(1ull << 30);
    int major = 0, minor = 0;
    if (cc && cc(d, &major, &minor) == 0) info.compute_capability = major + minor / 10.0;
    char ubuf[96] = {};
    if (uuid && uuid(d, ubuf, sizeof ubuf) == 0) info.uuid = ubuf;
    out.push_back(info);
  }
  if (out.empty() && note) *note = "the NVIDIA driver reports no GPUs";
  return out;
}

}  // namespace iogrid::gpu
