// WorkSource: where a worker thread takes its tasks during a lease. The runtime implements it twice:
// a job's queue of same-shaped tasks (normal tasks), and an actor's mailbox (the actor's calls).
// Invariants: next() hands each spec to exactly one worker; every spec handed out comes back through
// finish(); a nullptr from next() ends the lease and is followed by lease_ended().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "iogrid/core/task_spec.hpp"

namespace iogrid::worker {

// Who is running: the worker's node, and the GPUs of the lease it serves. Available to running tasks through
// current_context().
struct WorkerContext {
  std::uint32_t node_index = 0;
  std::string node_name;
  std::uint64_t worker_id = 0;
  std::vector<std::pair<std::uint32_t, double>> gpus;  // (device index on the node, fraction of it)
};

// What running one spec produced.
struct Outcome {
  core::MutableBufferPtr value;                 // the serialised result (normal tasks, actor calls)
  std::vector<std::shared_ptr<void>> contained;   // ObjectRefs inside the result
  void* instance = nullptr;                       // actor construction: the new instance
  std::shared_ptr<core::ObjectSource> location; // cluster mode: a large value left where it was made
  std::size_t location_size = 0;
  std::shared_ptr<core::ObjectSource> lost_dep;  // cluster mode: the argument the worker could not pull
  bool failed = false;
  std::string error;                              // the exception's message when failed
  // The task threw a TaskError from a task it depended on (a `get` it did not catch): the root of that failure,
  // which this task's failure passes on one step further.
  std::shared_ptr<const core::ErrorInfo> root;
};

class WorkSource {
 public:
  virtual ~WorkSource() = default;
  virtual core::TaskSpec* next(const WorkerContext& ctx) = 0;
  virtual void* self() { return nullptr; }
  virtual void finish(core::TaskSpec* spec, Outcome&& outcome, const WorkerContext& ctx) = 0;
  virtual void lease_ended(const WorkerContext& /*ctx*/) {}
  // Cluster mode: the worker (process or node) holding `spec` is gone. The default fails the spec.
  virtual void lost(core::TaskSpec* spec, const WorkerContext& ctx, const std::string& why) {
    Outcome o;
    o.failed = true;
    o.error = why;
    finish(spec, std::move(o), ctx);
  }
  // Cluster mode: the lease's worker was lost (called once, at once, possibly while next() is waiting).
  virtual void lease_lost(const WorkerContext& /*ctx*/, const std::string& /*why*/) {}
  // Cluster mode: `spec` could not be sent (an argument is being rebuilt); run it later. The default fails it.
  virtual void requeue(core::TaskSpec* spec, const WorkerContext& ctx) {
    lost(spec, ctx, "an argument was lost with its node");
  }
  // Cluster mode: the lease ended without next() having returned nullptr (its worker was lost).
  virtual void lease_abandoned(const WorkerContext& /*ctx*/) {}
  // A task of this lease waits for `e`: if the task producing `e` has not started and fits this lease, run it
  // here, on the waiting worker's thread (core::InlineRunner); return whether it ran.
  virtual bool run_inline(core::ObjectEntry* /*e*/, const WorkerContext& /*ctx*/) { return false; }
  // The running task parked in get/wait (its CPUs are lent out meanwhile) / resumed.
  virtual void worker_blocked() {}
  virtual void worker_unblocked() {}
};

// The context of the worker thread calling this, or nullptr on any other thread (the driver).
const WorkerContext* current_context();

}  // namespace iogrid::worker
