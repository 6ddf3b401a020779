// The errors a user of iogrid can catch. Every one says what happened and what to do.
// All derive from iogrid::Error, so `catch (const iogrid::Error&)` catches them all.
//   Error                 the base of them all
//   TaskError             a task or actor method threw: task_name(), node(), remote_message()
//   InfeasibleError       no node can ever satisfy the request (names the request and the closest node)
//   TaskCancelledError    the task was cancelled before it produced a result
//   ActorDiedError        the actor is dead (killed, constructor failed, or out of restarts)
//   GetTimeoutError       get or wait ran past its timeout; the object may still arrive later
//   ObjectStoreFullError  the object store cannot hold the object, even after spilling
//   SerializationError    a value could not be decoded as the type asked for
//   RuntimeError          the runtime is not running (init() not called, or shut down)
//   CollectiveError       a collective group's rendezvous or operation failed
// They are defined in core/ (iogrid/core/errors.hpp), where the runtime throws them from.
#pragma once

#include "iogrid/core/errors.hpp"

namespace iogrid {

using core::Error;
using core::TaskError;
using core::InfeasibleError;
using core::TaskCancelledError;
using core::ActorDiedError;
using core::GetTimeoutError;
using core::ObjectStoreFullError;
using core::SerializationError;
using core::RuntimeError;
using core::CollectiveError;

}  // namespace iogrid
