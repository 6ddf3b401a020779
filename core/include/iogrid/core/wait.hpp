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

// Waits until at least `k` of `entries` are done or the deadline passes; returns the done indices
// (ascending). Spins briefly before parking the thread.
std::vector<std::size_t> wait_entries(const std::vector<ObjectEntry*>& entries, std::size_t k,
                                      std::chrono::steady_clock::time_point deadline);

}  // namespace iogrid::core
