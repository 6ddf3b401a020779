// TaskSpec: one unit of work (a task, an actor's construction, or an actor method call) as the runtime
// moves it from the submitter to a worker. FunctionInfo: how to run a registered function by name.
// Invariants: a spec's `deps` are all done before a worker sees it; `result` is completed exactly once.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/detail/buffer.hpp"
#include "iogrid/detail/object_entry.hpp"
#include "iogrid/serialization.hpp"

namespace iogrid::detail {

class ArgReader;
struct FunctionInfo;

using CallFn = MutableBufferPtr (*)(const FunctionInfo&, void* self, ArgReader&,
                                    std::vector<std::shared_ptr<void>>* contained);
using ConstructFn = void* (*)(ArgReader&);
using DestroyFn = void (*)(void*);

// A registered function, method or constructor. `pointer` holds the bytes of the C++ (member) function pointer.
struct FunctionInfo {
  std::string name;
  std::array<unsigned char, 16> pointer{};
  CallFn call = nullptr;
  ConstructFn construct = nullptr;
  DestroyFn destroy = nullptr;
};

enum class TaskKind : std::uint8_t { normal, actor_create, actor_call };

struct TaskSpec {
  TaskKind kind = TaskKind::normal;
  const FunctionInfo* fn = nullptr;
  std::string name;
  std::string args;                  // per parameter: u8 tag (0: inline value follows, 1: u32 index into deps)
  std::vector<RefHandle> deps;       // arguments passed as ObjectRefs
  std::vector<std::shared_ptr<void>> contained;  // refs inside inline argument values
  RefHandle result;
  std::uint32_t shape = 0;           // scheduling class (same resource request)
  int max_retries = 0;
  bool retry_exceptions = false;
  int attempt = 0;
  std::shared_ptr<void> actor;       // actor calls and creation: the runtime's actor record
  std::atomic<int> unresolved{0};
  std::atomic<bool> cancelled{false};
};

class ArgReader {
 public:
  explicit ArgReader(const TaskSpec& spec)
      : spec_(spec), r_(reinterpret_cast<const std::uint8_t*>(spec.args.data()), spec.args.size()) {}
  template <class T>
  T next() {
    auto tag = r_.read_pod<std::uint8_t>();
    if (tag == 0) return read_value<T>(r_);
    auto idx = r_.read_pod<std::uint32_t>();
    if (idx >= spec_.deps.size()) throw SerializationError("iogrid: corrupt task arguments");
    return deserialize<T>(spec_.deps[idx]->bytes());
  }

 private:
  const TaskSpec& spec_;
  Reader r_;
};

// The process-wide registry of remote functions (filled by IOGRID_REMOTE at start-up).
const FunctionInfo& register_function(FunctionInfo info);
const FunctionInfo* find_function(const std::string& name);
const FunctionInfo* find_function_by_pointer(const void* bytes, std::size_t n);

template <class P>
std::array<unsigned char, 16> pointer_bytes(P p) {
  static_assert(sizeof(P) <= 16, "iogrid: function pointer too large");
  std::array<unsigned char, 16> a{};
  std::memcpy(a.data(), &p, sizeof(P));
  return a;
}
template <class P>
P pointer_from(const FunctionInfo& f) {
  P p;
  std::memcpy(&p, f.pointer.data(), sizeof(P));
  return p;
}

}  // namespace iogrid::detail
