// Runs one task spec: decodes its arguments, calls the registered function (or constructs/calls the
// actor instance `self`), encodes the result. Exceptions from user code become a failed Outcome;
// nothing user code throws escapes into the worker.
#pragma once

#include "worker/work_source.hpp"

namespace iogrid::worker {

Outcome execute(core::TaskSpec& spec, void* self);

}  // namespace iogrid::worker
