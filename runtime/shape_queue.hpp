// ShapeQueue: a job's runnable tasks of one scheduling class (same resource request). Leased workers
// pull from it directly, so the head grants leases (O(leases)) and never sees individual tasks.
// Rules: a lease is requested whenever queued tasks outnumber active plus requested leases (at most
// kMaxPendingLeases requests in flight); a worker spins briefly on an empty queue, then parks, and gives
// its lease back after `lease_idle` without work. That decision is taken under the queue's lock, so a
// task pushed concurrently either reaches that worker or triggers a new lease request.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "runtime/lease_client.hpp"

namespace iogrid::runtime {

class TaskSubmitter;

class ShapeQueue final : public worker::WorkSource,
                         public LeaseClient,
                         public std::enable_shared_from_this<ShapeQueue> {
 public:
  static constexpr int kMaxPendingLeases = 4;
  // How long an infeasible refusal fails later tasks of the shape without asking the head again.
  static constexpr std::chrono::milliseconds kRefusalMemory{1000};

  ShapeQueue(TaskSubmitter& owner, std::uint32_t id, sched::ResourceRequest req, std::chrono::milliseconds idle);

  void push(core::TaskSpec* spec);
  // Fails everything queued, and every push for kRefusalMemory after, with `error` (an infeasible request).
  void fail_all(std::shared_ptr<const core::ErrorInfo> error);
  void close();  // shutdown: wakes workers; queued specs are failed by fail_all

  // worker::WorkSource
  core::TaskSpec* next(const worker::WorkerContext& ctx) override;
  void finish(core::TaskSpec* spec, worker::Outcome&& outcome, const worker::WorkerContext& ctx) override;
  void lost(core::TaskSpec* spec, const worker::WorkerContext& ctx, const std::string& why) override;
  void lease_abandoned(const worker::WorkerContext& ctx) override;
  void requeue(core::TaskSpec* spec, const worker::WorkerContext& ctx) override;
  void worker_blocked() override;
  void worker_unblocked() override;
  // Runs the queued task producing `e` here (same shape: it fits the lease by definition).
  bool run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx) override;
  // Takes the queued task producing `e` out of the queue (nullptr: not queued here).
  core::TaskSpec* take(core::ObjectEntry* e);

  // LeaseClient
  void lease_granted() override;
  void lease_failed(std::shared_ptr<const core::ErrorInfo> error) override;

  const sched::ResourceRequest& request() const { return req_; }
  std::uint32_t id() const { return id_; }

 private:
  core::TaskSpec* pop_locked();
  // The lease rule (see above): true, counting the request, when queued tasks outnumber active plus requested
  // leases and fewer than kMaxPendingLeases are in flight.
  bool claim_lease_request_locked();
  TaskSubmitter& owner_;
  const std::uint32_t id_;
  const sched::ResourceRequest req_;
  const std::chrono::milliseconds idle_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<core::TaskSpec*> q_;
  std::atomic<std::size_t> size_{0};
  int parked_ = 0;
  int active_leases_ = 0;
  int pending_leases_ = 0;
  std::atomic<bool> closed_{false};
  std::shared_ptr<const core::ErrorInfo> failed_;
  std::chrono::steady_clock::time_point failed_at_{};
};

}  // namespace iogrid::runtime
