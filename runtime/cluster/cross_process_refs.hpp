// What cluster mode says when an ObjectRef travels inside a value to another process (not supported yet:
// refs work as direct task arguments, where the owner resolves them).
#pragma once

#include "iogrid/errors.hpp"

namespace iogrid::runtime::cluster {

[[noreturn]] inline void ref_inside_value_cannot_leave() {
  throw Error("iogrid: an ObjectRef inside a task's arguments or result cannot cross processes in cluster mode yet; "
              "pass the ObjectRef as a direct task argument instead");
}

[[noreturn]] inline void ref_inside_value_cannot_arrive() {
  throw Error("iogrid: an ObjectRef inside a value cannot cross processes in cluster mode yet");
}

}  // namespace iogrid::runtime::cluster
