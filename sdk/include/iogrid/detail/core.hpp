// Core: what the SDK's templates ask of a running runtime. The embedded runtime implements it
// (runtime/embedded_runtime.cpp); the SDK's public functions forward here.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/detail/object_entry.hpp"
#include "iogrid/detail/task_spec.hpp"
#include "iogrid/options.hpp"

namespace iogrid::detail {

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
Core& core();
bool core_running();
void set_core(Core* c);

// Large arguments are stored in the object store and passed by reference, as Ray does.
inline constexpr std::size_t kMaxInlineArgBytes = 100 * 1024;
// Values up to this size live inline in their entry; larger ones go to the node's object store.
inline constexpr std::size_t kMaxInlineValueBytes = 64 * 1024;

// Waits until at least `k` of `entries` are done or the deadline passes; returns the done indices
// (ascending). Spins briefly before parking the thread.
std::vector<std::size_t> wait_entries(const std::vector<ObjectEntry*>& entries, std::size_t k,
                                      std::chrono::steady_clock::time_point deadline);

}  // namespace iogrid::detail
