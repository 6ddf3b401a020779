#include "gpu/devices.hpp"

#include "gpu/memory.hpp"

#include <cstdlib>
#include <dlfcn.h>

#include <sstream>

namespace iogrid::gpu {

namespace {
// The few NVML entry points used, declared here so no NVML header is needed at build time.
using nvmlDevice_t = void*;
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlUtilization {
  unsigned gpu, memory;
};
struct NvmlPci {
  char bus_id_legacy[16];
  unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
  char bus_id[32];
};
using InitFn = int (*)();
using CountFn = int (*)(unsigned*);
using HandleFn = int (*)(unsigned, nvmlDevice_t*);
using NameFn = int (*)(nvmlDevice_t, char*, unsigned);
using MemFn = int (*)(nvmlDevice_t, NvmlMemory*);
using CcFn = int (*)(nvmlDevice_t, int*, int*);
using TempFn = int (*)(nvmlDevice_t, int, unsigned*);
using UintFn = int (*)(nvmlDevice_t, unsigned*);
using UtilFn = int (*)(nvmlDevice_t, NvmlUtilization*);
using ClockFn = int (*)(nvmlDevice_t, int, unsigned*);
using PciFn = int (*)(nvmlDevice_t, NvmlPci*);

// NVML loaded once per process.
struct Nvml {
  void* lib = nullptr;
  bool ok = false;
  std::string why;
  CountFn count = nullptr;
  HandleFn handle = nullptr;
  NameFn name = nullptr, uuid = nullptr;
  MemFn mem = nullptr;
  CcFn cc = nullptr;
  TempFn temperature = nullptr;
  UintFn power = nullptr, power_limit = nullptr;
  UtilFn utilization = nullptr;
  ClockFn clock = nullptr;
  PciFn pci = nullptr;

  static Nvml& get() {
    static Nvml n;
    return n;
  }

 private:
  Nvml() {
    lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      why = "no NVIDIA driver found (libnvidia-ml.so.1 not loadable): this node has no GPUs";
      return;
    }
    auto sym = [&](const char* s) { return dlsym(lib, s); };
    auto init = reinterpret_cast<InitFn>(sym("nvmlInit_v2"));
    count = reinterpret_cast<CountFn>(sym("nvmlDeviceGetCount_v2"));
    handle = reinterpret_cast<HandleFn>(sym("nvmlDeviceGetHandleByIndex_v2"));
    name = reinterpret_cast<NameFn>(sym("nvmlDeviceGetName"));
    uuid = reinterpret_cast<NameFn>(sym("nvmlDeviceGetUUID"));
    mem = reinterpret_cast<MemFn>(sym("nvmlDeviceGetMemoryInfo"));
    cc = reinterpret_cast<CcFn>(sym("nvmlDeviceGetCudaComputeCapability"));
    temperature = reinterpret_cast<TempFn>(sym("nvmlDeviceGetTemperature"));
    power = reinterpret_cast<UintFn>(sym("nvmlDeviceGetPowerUsage"));
    power_limit = reinterpret_cast<UintFn>(sym("nvmlDeviceGetEnforcedPowerLimit"));
    utilization = reinterpret_cast<UtilFn>(sym("nvmlDeviceGetUtilizationRates"));
    clock = reinterpret_cast<ClockFn>(sym("nvmlDeviceGetClockInfo"));
    pci = reinterpret_cast<PciFn>(sym("nvmlDeviceGetPciInfo_v3"));
    if (!init || !count || !handle || !name || !mem || init() != 0) {
      why = "the NVIDIA driver's NVML did not initialise: this node has no GPUs";
      return;
    }
    ok = true;
  }
};
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
  auto& nv = Nvml::get();
  unsigned n = 0;
  if (!nv.ok || nv.count(&n) != 0) {
    if (note) *note = nv.ok ? "NVML could not count the GPUs: this node has no GPUs" : nv.why;
    return out;
  }
  std::string cuda_why;
  if (cuda_built() && n > 0 && cuda_device_count(&cuda_why) == 0) {
    if (note) *note = "the CUDA runtime cannot use this machine's GPUs (" + cuda_why + "): this node has no GPUs";
    return out;
  }
  for (unsigned i = 0; i < n; ++i) {
    nvmlDevice_t d = nullptr;
    if (nv.handle(i, &d) != 0) continue;
    DeviceInfo info;
    info.index = static_cast<int>(i);
    char buf[128] = {};
    if (nv.name(d, buf, sizeof buf) == 0) info.full_name = buf;
    info.model = short_model(info.full_name);
    NvmlMemory m{};
    if (nv.mem(d, &m) == 0) info.memory_gib = double(m.total) / double(1ull << 30);
    int major = 0, minor = 0;
    if (nv.cc && nv.cc(d, &major, &minor) == 0) info.compute_capability = major + minor / 10.0;
    char ubuf[96] = {};
    if (nv.uuid && nv.uuid(d, ubuf, sizeof ubuf) == 0) info.uuid = ubuf;
    NvmlPci p{};
    if (nv.pci && nv.pci(d, &p) == 0) info.pci_bus = p.bus_id;
    info.sm_count = cuda_sm_count(info.index);
    out.push_back(info);
  }
  if (out.empty() && note) *note = "the NVIDIA driver reports no GPUs";
  return out;
}

std::vector<Telemetry> read_telemetry() {
  std::vector<Telemetry> out;
  auto& nv = Nvml::get();
  unsigned n = 0;
  if (!nv.ok || nv.count(&n) != 0) return out;
  for (unsigned i = 0; i < n; ++i) {
    nvmlDevice_t d = nullptr;
    if (nv.handle(i, &d) != 0) continue;
    Telemetry t;
    t.index = static_cast<int>(i);
    unsigned v = 0;
    if (nv.temperature && nv.temperature(d, 0 /* the GPU die */, &v) == 0) t.temperature_c = v;
    if (nv.power && nv.power(d, &v) == 0) t.power_w = v / 1000.0;
    if (nv.power_limit && nv.power_limit(d, &v) == 0) t.power_limit_w = v / 1000.0;
    NvmlUtilization u{};
    if (nv.utilization && nv.utilization(d, &u) == 0) t.utilization_pct = u.gpu;
    NvmlMemory m{};
    if (nv.mem(d, &m) == 0) t.memory_used_gib = double(m.used) / double(1ull << 30);
    if (nv.clock && nv.clock(d, 1 /* SM */, &v) == 0) t.sm_clock_mhz = static_cast<int>(v);
    if (nv.clock && nv.clock(d, 2 /* memory */, &v) == 0) t.memory_clock_mhz = static_cast<int>(v);
    out.push_back(t);
  }
  return out;
}

void use_pci_device_order() { setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 0); }

}  // namespace iogrid::gpu
