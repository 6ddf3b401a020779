// The errors a user of iogrid can catch, thrown by the runtime and the SDK alike. Every one says what
// happened and what to do. All derive from Error, so `catch (const iogrid::Error&)` catches them all; the
// public header iogrid/errors.hpp names them in namespace iogrid.
#pragma once

#include <stdexcept>
#include <string>

namespace iogrid::core {


class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A task (or actor method) threw. Carries the task's name, the node it ran on and the remote message.
class TaskError : public Error {
 public:
  TaskError(std::string task_name, std::string node, std::string message)
      : Error("task '" + task_name + "' failed on node '" + node + "': " + message),
        task_name_(std::move(task_name)),
        node_(std::move(node)),
        message_(std::move(message)) {}
  const std::string& task_name() const { return task_name_; }
  const std::string& node() const { return node_; }
  const std::string& remote_message() const { return message_; }

 private:
  std::string task_name_, node_, message_;
};

// No node of the cluster can ever satisfy the resource request (names the request and the closest node).
class InfeasibleError : public Error {
 public:
  using Error::Error;
};

// The task was cancelled before it produced a result.
class TaskCancelledError : public Error {
 public:
  using Error::Error;
};

// The actor is dead (killed, constructor failed, or out of restarts).
class ActorDiedError : public Error {
 public:
  using Error::Error;
};

// `get` or `wait` ran past its timeout; the object may still arrive later.
class GetTimeoutError : public Error {
 public:
  using Error::Error;
};

// The object store cannot hold the object, even after spilling what it could.
class ObjectStoreFullError : public Error {
 public:
  using Error::Error;
};

// A value could not be decoded as the type asked for.
class SerializationError : public Error {
 public:
  using Error::Error;
};

// The runtime is not running (init() not called, or shut down).
class RuntimeError : public Error {
 public:
  using Error::Error;
};

// A collective group's rendezvous or operation failed (a member died or stopped answering, bad arguments).
class CollectiveError : public Error {
 public:
  using Error::Error;
};

}  // namespace iogrid::core
