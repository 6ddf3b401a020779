// TaskSubmitter: the owner side of a job. It resolves a task's ObjectRef arguments without occupying
// any worker (callbacks on the argument entries), routes runnable tasks to the queue of their scheduling
// class, asks the head for worker leases, and completes results: small values inline in their entry,
// large ones in the object store of the node that ran the task. It also applies retries.
// Thread-safe: called from the driver, from worker threads (nested tasks, completions) and the head.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "iogrid/core/core.hpp"
#include "iogrid/core/task_spec.hpp"
#include "iogrid/core/options.hpp"
#include "runtime/actor_record.hpp"
#include "runtime/lease_client.hpp"
#include "runtime/lineage.hpp"
#include "runtime/object_store.hpp"
#include "runtime/shape_queue.hpp"
#include "runtime/spot_checker.hpp"
#include "runtime/task_stats.hpp"

namespace iogrid::runtime {

// Converts and checks a user's options; throws iogrid::Error naming the bad field.
sched::ResourceRequest to_request(const core::TaskOptions& o);
// The reservation ("c-7") tasks and actors run in when their options name none; empty: anywhere.
void set_default_cluster(const std::string& id);
sched::ResourceRequest to_request(const core::ActorOptions& o);

class TaskSubmitter {
 public:
  struct Hooks {
    std::function<void(LeaseRequest)> request_lease;
    std::function<std::shared_ptr<ObjectStore>(std::uint32_t node)> store_of;
    std::function<core::RefHandle()> new_entry;   // for results of re-run tasks (lineage, spot checks); required
    bool wait_for_contained = false;  // cluster mode: refs inside arguments must be done before a task is sent
    double verify_fraction = 0;       // spot checks for tasks that set no TaskOptions::verify_fraction
    std::uint64_t check_seed = 0;     // which runs are checked (0: random)
    // A spot check's outcome for the head, at once (embedded); unset: it rides the next TaskStats report.
    std::function<void(const CheckRecord&)> checked;
  };
  TaskSubmitter(Hooks hooks, std::chrono::milliseconds lease_idle);
  ~TaskSubmitter();

  void submit(std::unique_ptr<core::TaskSpec> spec, const core::TaskOptions& opts);
  std::shared_ptr<ActorRecord> create_actor(std::unique_ptr<core::TaskSpec> ctor, const core::ActorOptions& opts);

  // Runs `then(spec)` once every argument entry of `spec` is done (now, or in the completing thread).
  void when_args_ready(core::TaskSpec* spec, std::function<void(core::TaskSpec*)> then);
  // The error of the first failed argument, if any, as `spec` fails with it (one more step of the chain).
  static std::shared_ptr<const core::ErrorInfo> failed_arg(const core::TaskSpec& spec);

  // Stores a task's outcome (or retries it) and frees the spec. `retry` re-queues it.
  void complete(core::TaskSpec* spec, worker::Outcome&& outcome, const worker::WorkerContext& ctx,
                const std::function<void(core::TaskSpec*)>& retry);
  void fail(core::TaskSpec* spec, std::shared_ptr<const core::ErrorInfo> error);
  // A successful outcome completes the task's result (inline or where it lies) and frees the spec.
  void deliver(core::TaskSpec* spec, worker::Outcome&& outcome, const worker::WorkerContext& ctx);
  // Spot checks (runtime/spot_checker.hpp): queues a check's run on any node but `avoid` (and not pinned), and
  // the entry its result goes to.
  void push_check(core::TaskSpec* run, const std::vector<std::string>& avoid);
  void checked(const CheckRecord& r) {
    stats_.check_done(r, !hooks_.checked);
    if (hooks_.checked) hooks_.checked(r);
  }
  std::uint64_t check_draws() const { return checker_.draws(); }
  core::RefHandle new_check_entry() { return hooks_.new_entry(); }
  // The spot-check share for tasks that set none (cluster mode: the head's --verify-fraction, once known).
  void set_verify_default(double fraction) { verify_default_.store(fraction, std::memory_order_relaxed); }
  double verify_default() const { return verify_default_.load(std::memory_order_relaxed); }
  // Stores a value produced on `node` into `entry` (inline or in that node's store).
  void store_value(core::ObjectEntry* entry, core::MutableBufferPtr value,
                   std::vector<std::shared_ptr<void>> contained, std::uint32_t node);

  void request_lease(LeaseRequest req) { hooks_.request_lease(std::move(req)); }
  // Runs the queued task producing `e` on the calling worker thread, if one is queued in a shape that `fits`
  // allows (core::InlineRunner); returns whether it ran.
  bool run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx,
                  const std::function<bool(const sched::ResourceRequest&)>& fits);
  // The recipe that re-runs `spec` through `push` (its queue), for a result that may be lost with its node.
  Recompute recipe(const core::TaskSpec& spec, std::function<void(core::TaskSpec*)> push);
  void shutdown();
  bool stopped() const;

  static std::shared_ptr<const core::ErrorInfo> stopped_error();
  // The job's tasks as its owner sees them (the dashboard's tasks, timeline and failures).
  TaskStats& stats() { return stats_; }

 private:
  std::shared_ptr<ShapeQueue> shape_for(const sched::ResourceRequest& req);
  Hooks hooks_;
  std::chrono::milliseconds lease_idle_;
  mutable std::mutex m_;
  std::unordered_map<std::string, std::shared_ptr<ShapeQueue>> shapes_;
  std::vector<std::weak_ptr<ActorRecord>> actors_;
  bool stopped_ = false;
  TaskStats stats_;
  std::atomic<double> verify_default_{0};
  SpotChecker checker_;
};

}  // namespace iogrid::runtime
