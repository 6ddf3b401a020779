// Core: what the SDK's templates ask of a running runtime. Both runtimes implement it (the embedded one in
// runtime/embedded_runtime.cpp, the cluster client in runtime/cluster/cluster_client.cpp, through
// runtime/submitter_core.hpp); the SDK's public functions forward here.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/core/object_entry.hpp"
#include "iogrid/core/task_spec.hpp"
#include "iogrid/core/options.hpp"

namespace iogrid::core {

class Core {
 public:
  virtual ~Core() = default;

  // A new pending entry owned by the caller (one reference).
  virtual RefHandle new_entry() = 0;
  // Submits a task; its result entry must already be set.
  virtual void submit(std::unique_ptr<TaskSpec> spec, const TaskOptions& opts) = 0;
  // Stores a value; returns a ready entry.
  virtual RefHandle put(MutableBufferPtr value, std::vector<std::shared_ptr<void>> contained) = 0;
  virtual void cancel(ObjectEntry* e) = 0;

  // ObjectRefs serialised inside values: export registers the entry under its id, import finds it again.
  virtual std::shared_ptr<void> export_ref(ObjectEntry* e) = 0;
  virtual RefHandle import_ref(std::uint64_t id) = 0;

  // Actors: creation returns the record every handle shares; calls go to it in submission order.
  virtual std::shared_ptr<void> create_actor(std::unique_ptr<TaskSpec> ctor, const ActorOptions& opts) = 0;
  virtual void submit_actor_call(const std::shared_ptr<void>& actor, std::unique_ptr<TaskSpec> spec) = 0;
  virtual void kill_actor(const std::shared_ptr<void>& actor, bool no_restart) = 0;

  // Name of the node the calling thread runs on ("driver" outside any task).
  virtual std::string current_node() const = 0;
};

// The running core; throws iogrid::RuntimeError when init() has not been called.
Core& current();
bool is_running();
// Installs the running core (nullptr: none). The SDK's init() and shutdown() call it.
void install(Core* c);

// Large arguments are stored in the object store and passed by reference, as Ray does.
inline constexpr std::size_t kMaxInlineArgBytes = 100 * 1024;
// Values up to this size live inline in their entry; larger ones go to the node's object store.
inline constexpr std::size_t kMaxInlineValueBytes = 64 * 1024;

}  // namespace iogrid::core
