// The SDK's boundary with the runtime: the public TaskOptions / ActorOptions become the runtime's own
// (iogrid/core/options.hpp) here, as Ray's C++ API converts its options into core options.
#pragma once

#include <memory>

#include "iogrid/core/core.hpp"
#include "iogrid/options.hpp"

namespace iogrid::detail {

core::TaskOptions to_core(const TaskOptions& o);
core::ActorOptions to_core(const ActorOptions& o);

inline void submit_task(core::Core& rt, std::unique_ptr<core::TaskSpec> spec, const TaskOptions& opts) {
  rt.submit(std::move(spec), to_core(opts));
}
inline std::shared_ptr<void> create_actor(core::Core& rt, std::unique_ptr<core::TaskSpec> ctor, const ActorOptions& opts) {
  return rt.create_actor(std::move(ctor), to_core(opts));
}

}  // namespace iogrid::detail
