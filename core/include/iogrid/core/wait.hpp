// Waiting for object entries (get, wait): spin briefly, then park the thread. A worker thread that parks
// tells its runtime through its BlockingObserver, which lends the worker's CPUs to other work meanwhile
// (so nested tasks cannot deadlock a full node), as Ray does.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "iogrid/core/object_entry.hpp"

namespace iogrid::core {

// A worker thread that parks in get/wait tells its runtime, which lends the worker's CPUs to other
// work meanwhile (so nested tasks cannot deadlock a full node). Set per thread; null on the driver.
class BlockingObserver {
 public:
  virtual ~BlockingObserver() = default;
  virtual void blocked() = 0;
  virtual void unblocked() = 0;
};
void set_blocking_observer(BlockingObserver* o);

// Spins briefly, then parks until `e` is done or `deadline` passes. Returns whether it is done.
bool wait_done(ObjectEntry* e, std::chrono::steady_clock::time_point deadline);

// Before a worker thread parks in get/wait, its runtime may run the task producing an awaited entry right
// there, if that task has not started anywhere yet and fits the thread's lease (typically a child the waiting
// task has just submitted): nested graphs then run depth-first on the waiting thread instead of parking it
// and leasing another worker. Set per thread, like the BlockingObserver; null on the driver.
class InlineRunner {
 public:
  virtual ~InlineRunner() = default;
  // Runs the task producing `e` here if it can; returns whether it ran one.
  virtual bool run_inline(ObjectEntry* e) = 0;
};
void set_inline_runner(InlineRunner* r);

// Waits until at least `k` of `entries` are done or the deadline passes; returns the done indices
// (ascending). Spins briefly before parking the thread.
std::vector<std::size_t> wait_entries(const std::vector<ObjectEntry*>& entries, std::size_t k,
                                      std::chrono::steady_clock::time_point deadline);

}  // namespace iogrid::core
