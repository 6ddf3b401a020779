#include "gpu/cuda_plugin.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <mutex>

#include "gpu/collective/nccl_backend.hpp"

namespace iogrid::gpu {

namespace {

// A plugin's entry point, loaded once: `file` looked for as the header says, `symbol` called for its table.
template <class Plugin>
struct Loaded {
  const Plugin* plugin = nullptr;
  std::string why;
};

std::filesystem::path executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

template <class Plugin>
Loaded<Plugin> load(const char* env_var, const std::string& file, const char* symbol, const std::string& what) {
  Loaded<Plugin> r;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv(env_var); env && *env) {
    candidates.push_back(env);
  } else {
    auto dir = executable_dir();
    if (!dir.empty()) {
      candidates.push_back((dir.parent_path() / "lib" / file).string());
      candidates.push_back((dir / file).string());
    }
    candidates.push_back(file);
  }
  std::string errors;
  for (const auto& path : candidates) {
    if (path.find('/') != std::string::npos && !std::filesystem::exists(path)) continue;
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = dlerror();
      errors += (errors.empty() ? "" : "; ") + std::string(e ? e : path);
      continue;
    }
    auto entry = reinterpret_cast<const Plugin* (*)()>(dlsym(h, symbol));
    if (!entry) {
      errors += (errors.empty() ? "" : "; ") + path + " has no " + symbol + " entry";
      continue;
    }
    const Plugin* p = entry();
    if (!p || p->abi != kCudaPluginAbi) {
      errors += (errors.empty() ? "" : "; ") + path + " speaks plugin ABI " + std::to_string(p ? p->abi : -1) +
                ", this program " + std::to_string(kCudaPluginAbi);
      continue;
    }
    r.plugin = p;  // the handle stays open for the life of the process
    return r;
  }
  r.why = "the " + what + " plugin " + file + " is not available (" +
          (errors.empty() ? std::string("not found; a build without CUDA has none") : errors) + ")";
  return r;
}

}  // namespace

const CudaPlugin* cuda_plugin(std::string* why) {
  static const auto loaded = load<CudaPlugin>("IOGRID_CUDA_PLUGIN", "libiogrid_cuda.so", "iogrid_cuda_plugin", "CUDA");
  if (!loaded.plugin && why) *why = loaded.why;
  return loaded.plugin;
}

const NcclPlugin* nccl_plugin(std::string* why) {
  static const auto loaded = load<NcclPlugin>("IOGRID_NCCL_PLUGIN", "libiogrid_nccl.so", "iogrid_nccl_plugin", "NCCL");
  if (!loaded.plugin && why) *why = loaded.why;
  return loaded.plugin;
}

namespace kernels {
Ops* cuda_ops(int device, std::string* why) {
  const auto* p = cuda_plugin(why);
  if (!p) return nullptr;
  Ops* ops = p->ops(device);
  if (!ops && why) *why = "no CUDA device " + std::to_string(device) + " on this machine";
  return ops;
}
}  // namespace kernels

namespace collective {
std::unique_ptr<Backend> make_nccl(Store& store, const std::string& prefix, int rank, int size, int device,
                                   const GroupOptions& o) {
  std::string why;
  const auto* p = nccl_plugin(&why);
  if (!p) throw CollectiveError("group " + prefix + ": NCCL is not available: " + why);
  return std::unique_ptr<Backend>(p->make_nccl(store, prefix, rank, size, device, o));
}
}  // namespace collective

}  // namespace iogrid::gpu
