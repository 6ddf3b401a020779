// The process-wide registry of remote functions: IOGRID_REMOTE registers each function, method and actor
// constructor at start-up under its name; a worker finds it again by name (a task from another process of
// the same executable) or by the bytes of its C++ pointer (a call in this process).
// Invariants: a FunctionInfo's address never changes once registered; registering a name twice returns the
// first registration.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/core/buffer.hpp"

namespace iogrid::core {

struct TaskSpec;
struct FunctionInfo;

// Runs a registered function on a task's arguments (decoded by the SDK's templates) and returns its result's
// bytes; refs found inside the result go to `contained`. `self` is the actor instance for methods.
using CallFn = MutableBufferPtr (*)(const FunctionInfo&, void* self, const TaskSpec&,
                                    std::vector<std::shared_ptr<void>>* contained);
using ConstructFn = void* (*)(const TaskSpec&);
using DestroyFn = void (*)(void*);
// Whether two serialised results of the function are equal within a relative tolerance (floating-point values
// element by element; everything else exactly). Written by the SDK from the result type.
using CloseFn = bool (*)(const BufferPtr& a, const BufferPtr& b, double tolerance);

// A registered function, method or constructor. `pointer` holds the bytes of the C++ (member) function pointer.
struct FunctionInfo {
  std::string name;
  std::array<unsigned char, 16> pointer{};
  CallFn call = nullptr;
  ConstructFn construct = nullptr;
  DestroyFn destroy = nullptr;
  CloseFn close = nullptr;
};

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

}  // namespace iogrid::core
