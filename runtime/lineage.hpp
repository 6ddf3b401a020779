// Lineage: how an object can be made again. When a task's large result stays on the node that ran it, the
// owner keeps the task's recipe (function, arguments, and references to its inputs, which stay pinned), so if
// that node dies the object is rebuilt by running the task again (recursively for inputs lost with it).
#pragma once

#include <functional>

#include "iogrid/core/object_entry.hpp"

namespace iogrid::runtime {

// Runs the task again; calls `done` with the new result's entry once it is complete (ready or failed).
using Recompute = std::function<void(std::function<void(core::RefHandle)> done)>;

// An object source that can use a recipe (cluster mode's remote objects).
class LineageAware {
 public:
  virtual ~LineageAware() = default;
  virtual void set_lineage(Recompute r) = 0;
};

}  // namespace iogrid::runtime
