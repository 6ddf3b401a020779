#include "worker/executor.hpp"

#include <exception>
#include <string>

#include "iogrid/core/errors.hpp"

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
  } catch (const core::TaskError& e) {
    out.failed = true;
    out.error = e.what();
    out.root = std::make_shared<const core::ErrorInfo>(
        core::ErrorInfo{core::ErrorKind::task_failed, e.task_name(), e.node(), e.remote_message(), e.through() + 1});
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
