// The errors a user of iogrid can catch, thrown by the runtime and the SDK alike. Every one says what
// happened and what to do. All derive from Error, so `catch (const iogrid::Error&)` catches them all; the
// public header iogrid/errors.hpp names them in namespace iogrid.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace iogrid::core {


class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A task (or actor method) threw. Carries the root of the failure: the task that threw first, the node it
// ran on and its message; `through` counts the tasks the failure passed through to get here (a parent that
// `get`s a failed child and does not catch, or a task whose argument failed), so a chain reads once:
//   task 'fib' failed on node 'cpu' (through 9 dependent tasks): <root message>
// A task that never reached a node (no worker could be started for it) says so instead of naming one.
class TaskError : public Error {
 public:
  TaskError(std::string task_name, std::string node, std::string message, std::uint32_t through = 0)
      : Error(describe(task_name, node, message, through)),
        task_name_(std::move(task_name)),
        node_(std::move(node)),
        message_(std::move(message)),
        through_(through) {}
  const std::string& task_name() const { return task_name_; }
  const std::string& node() const { return node_; }
  const std::string& remote_message() const { return message_; }
  std::uint32_t through() const { return through_; }

  static std::string describe(const std::string& task, const std::string& node, const std::string& message,
                              std::uint32_t through) {
    std::string s = "task '" + (task.empty() ? std::string("(unnamed)") : task) + "' failed ";
    s += node.empty() ? std::string("before it reached a node") : "on node '" + node + "'";
    if (through > 0) s += " (through " + std::to_string(through) + " dependent task" + (through == 1 ? "" : "s") + ")";
    return s + ": " + message;
  }

 private:
  std::string task_name_, node_, message_;
  std::uint32_t through_ = 0;
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
