// ActorRecord: one user actor across its incarnations. ActorMailbox: one incarnation's queue of calls,
// served by the worker that holds the actor's lease; its first item constructs the instance.
// Rules: calls are delivered to the mailbox in submission order (a call whose ObjectRef arguments are not
// ready holds back the calls after it, without blocking any worker); a killed incarnation fails its queued
// calls with ActorDiedError; with restarts left, a new incarnation is constructed from the original
// arguments on a fresh lease, and the calls it was running or had queued move to the new incarnation in their
// order while they have max_task_retries left (the rest fail); when every handle is gone the actor finishes its queued calls and is destroyed.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "iogrid/core/options.hpp"
#include "runtime/lease_client.hpp"

namespace iogrid::runtime {

class TaskSubmitter;
class ActorRecord;

class ActorMailbox final : public worker::WorkSource, public LeaseClient {
 public:
  ActorMailbox(std::shared_ptr<ActorRecord> rec, core::TaskSpec* ctor);
  // `front`: a retried call, ahead of the queued ones.
  void push(core::TaskSpec* spec, bool front = false);
  // Ends this incarnation: queued calls fail with `why`; the serving worker stops after its current call.
  void kill(std::shared_ptr<const core::ErrorInfo> why);
  // Ends after the queued calls have run.
  void close_when_drained();
  // Ends this incarnation for a restart: the queued calls (a call cut off by a lost worker first) that `may_retry`
  // come back in order for the next incarnation; the others fail with `why`.
  std::deque<core::TaskSpec*> end_for_restart(std::shared_ptr<const core::ErrorInfo> why,
                                              const std::function<bool(core::TaskSpec*)>& may_retry);

  core::TaskSpec* next(const worker::WorkerContext& ctx) override;
  void* self() override { return instance_; }
  void finish(core::TaskSpec* spec, worker::Outcome&& outcome, const worker::WorkerContext& ctx) override;
  void lease_ended(const worker::WorkerContext& ctx) override;
  void lost(core::TaskSpec* spec, const worker::WorkerContext& ctx, const std::string& why) override;
  void lease_lost(const worker::WorkerContext& ctx, const std::string& why) override;

  void lease_granted() override {}
  void lease_failed(std::shared_ptr<const core::ErrorInfo> error) override;

 private:
  std::shared_ptr<ActorRecord> rec_;
  core::TaskSpec* ctor_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<core::TaskSpec*> q_;
  std::atomic<std::size_t> size_{0};
  bool ctor_pending_ = true;
  bool parked_ = false;
  bool draining_ = false;
  std::shared_ptr<const core::ErrorInfo> dead_;
  std::atomic<bool> ended_{false};
  void* instance_ = nullptr;
  core::TaskSpec* cut_off_ = nullptr;  // the call running when the worker was lost (queued again by lost())
  std::shared_ptr<const core::ErrorInfo> cut_off_error_;
};

class ActorRecord final : public std::enable_shared_from_this<ActorRecord> {
 public:
  ActorRecord(TaskSubmitter& owner, std::unique_ptr<core::TaskSpec> ctor, core::ActorOptions opts,
              sched::ResourceRequest req);
  ~ActorRecord();

  void start();                                   // first incarnation
  void submit(core::TaskSpec* spec);            // an ordered call
  void kill(bool no_restart);
  // The incarnation `mb` lost its worker (process or node): restart per max_restarts, or die.
  void worker_lost(ActorMailbox* mb, const std::string& why);
  void handles_dropped();
  // From a mailbox: its incarnation died on its own (constructor failure, infeasible).
  void incarnation_failed(ActorMailbox* mb, std::shared_ptr<const core::ErrorInfo> why);
  void incarnation_ended(ActorMailbox* mb);
  // A call of the ended incarnation `from` was cut off by a lost worker after the incarnation ended: it runs
  // on the current incarnation if one was started since and max_task_retries allows, else fails with `why`.
  void call_cut_off(ActorMailbox* from, core::TaskSpec* spec, std::shared_ptr<const core::ErrorInfo> why);
  void shutdown(std::shared_ptr<const core::ErrorInfo> why);

  // From a mailbox: its constructor finished on `node` (the dashboard's actor table).
  void constructed(ActorMailbox* mb, const std::string& node);

  TaskSubmitter& owner() { return owner_; }
  const std::string& name() const { return ctor_->name; }

 private:
  void drain_waiting_locked();
  void end_incarnation(ActorMailbox* only, bool no_restart, const std::string& why);
  void start_incarnation_locked();
  bool may_retry(core::TaskSpec* call) const;  // max_task_retries left (counts the retry)
  void report_dead_locked();                   // dead_ is set: the owner's stats hear it once
  TaskSubmitter& owner_;
  std::unique_ptr<core::TaskSpec> ctor_;
  core::ActorOptions opts_;
  sched::ResourceRequest req_;
  std::mutex m_;
  std::shared_ptr<ActorMailbox> mailbox_;
  std::deque<core::TaskSpec*> waiting_;
  int restarts_ = 0;
  std::shared_ptr<const core::ErrorInfo> dead_;
  bool handles_gone_ = false;
  std::uint64_t stats_id_ = 0;                 // this actor in the owner's TaskStats
  std::string node_;                           // where the current incarnation was constructed
  bool reported_dead_ = false;
};

}  // namespace iogrid::runtime
