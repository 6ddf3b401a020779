#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

#include "iogrid/core/function_registry.hpp"

namespace iogrid::core {

namespace {
struct Registry {
  std::mutex m;
  std::deque<FunctionInfo> infos;  // stable addresses
  std::unordered_map<std::string, const FunctionInfo*> by_name;
  std::unordered_map<std::string, const FunctionInfo*> by_pointer;
};
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}
std::string key_of(const void* bytes, std::size_t n) { return std::string(static_cast<const char*>(bytes), n); }
}  // namespace

const FunctionInfo& register_function(FunctionInfo info) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  if (auto it = r.by_name.find(info.name); it != r.by_name.end()) return *it->second;
  r.infos.push_back(std::move(info));
  const FunctionInfo* fi = &r.infos.back();
  r.by_name.emplace(fi->name, fi);
  if (fi->call) r.by_pointer.emplace(key_of(fi->pointer.data(), fi->pointer.size()), fi);
  return *fi;
}

const FunctionInfo* find_function(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : it->second;
}

const FunctionInfo* find_function_by_pointer(const void* bytes, std::size_t n) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.m);
  auto it = r.by_pointer.find(key_of(bytes, n));
  return it == r.by_pointer.end() ? nullptr : it->second;
}

}  // namespace iogrid::core
