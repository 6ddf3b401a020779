// TaskSpec: one unit of work (a task, an actor's construction, or an actor method call) as the runtime
// moves it from the submitter to a worker.
// Invariants: a spec's `deps` are all done before a worker sees it; `result` is completed exactly once.
// `args` is opaque to the runtime: the SDK's templates write it and read it back (iogrid/detail/invoke.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/core/function_registry.hpp"
#include "iogrid/core/object_entry.hpp"

namespace iogrid::core {

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
  std::int64_t started_us = 0;       // when a worker took it (Unix microseconds; 0: waiting)
  std::shared_ptr<void> actor;       // actor calls and creation: the runtime's actor record
  float verify_fraction = 0;         // normal tasks: the share of successful runs spot-checked (scheduler/spot_check.hpp)
  double verify_tolerance = 0;       // 0: bitwise; else relative, for floating point (FunctionInfo::close)
  std::shared_ptr<void> check;       // a spot check's own run: the check it reports to (runtime/spot_checker.hpp)
  std::atomic<int> unresolved{0};
  std::atomic<bool> cancelled{false};
};

}  // namespace iogrid::core
