#include "worker/executor.hpp"

#include <exception>
#include <string>

namespace iogrid::worker {

Outcome execute(core::TaskSpec& spec, void* self) {
  Outcome out;
  try {
    switch (spec.kind) {
      case core::TaskKind::actor_create:
        out.instance = spec.fn->construct(spec);
        break;
      case core::TaskKind::actor_call:
      case core::TaskKind::normal:
        out.value = spec.fn->call(*spec.fn, self, spec, &out.contained);
        break;
    }
  } catch (const std::exception& e) {
    out.failed = true;
    out.error = e.what();
  } catch (...) {
    out.failed = true;
    out.error = "unknown exception (not derived from std::exception)";
  }
  return out;
}

}  // namespace iogrid::worker
