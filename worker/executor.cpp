#include "worker/executor.hpp"

#include <exception>
#include <string>

namespace iogrid::worker {

Outcome execute(detail::TaskSpec& spec, void* self) {
  Outcome out;
  try {
    detail::ArgReader in(spec);
    switch (spec.kind) {
      case detail::TaskKind::actor_create:
        out.instance = spec.fn->construct(in);
        break;
      case detail::TaskKind::actor_call:
      case detail::TaskKind::normal:
        out.value = spec.fn->call(*spec.fn, self, in, &out.contained);
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
