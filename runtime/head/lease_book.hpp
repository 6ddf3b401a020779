// LeaseBook: worker leases the head has promised (waiting in the scheduler's queue) and granted (running on
// a node), with what each costs and what each says about its node.
// Rules:
// - A granted lease is charged to the ledger when it ends, for the GPU-seconds it held at the price it was
//   granted at: its market's posted price x its tier's multiplier (the node's own price while the market has no
//   posted price; scheduler/feasibility.hpp pay_price); CPU-only leases cost nothing.
// - Blame (scheduler/reputation.hpp) moves only with what a provider controls: a lease that ends normally
//   credits its node (task_succeeded); leases lost because their node died count against it (task_failed,
//   once per lease, besides node_died). A job's own failures never reach a node's reputation.
// - A worker parked in get/wait lends its lease's CPUs (its GPUs stay held) and takes them back when it
//   resumes, even if that briefly over-commits the node; only live nodes lend.
// The clock is the caller's; no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/head/clock.hpp"
#include "runtime/head/job_table.hpp"
#include "scheduler/ledger.hpp"
#include "scheduler/reputation.hpp"
#include "scheduler/scheduler.hpp"

namespace iogrid::runtime::head {

// A request the scheduler queued (by its ticket) for an owner.
struct PendingLease {
  OwnerId owner = 0;
  std::uint64_t owner_lease = 0;   // the owner's name for it
  sched::ResourceRequest request;
};

struct LeaseRecord {
  std::string job;
  OwnerId owner = 0;               // 0: its owner is gone (the lease runs on until its node ends it)
  std::uint64_t owner_lease = 0;
  sched::Allocation alloc;
  std::uint64_t reservation = 0;   // the reservation it runs in, 0: none
  Clock::time_point start{};
  double price = 0;                // what it pays per GPU-hour (locked when granted: sched::pay_price)
  std::string tier = "standard";   // its request's tier
  bool yielding = false;           // asked to yield to a job owed a fair share (asked once)
};

class LeaseBook {
 public:
  LeaseBook(sched::Scheduler& s, sched::Ledger& l) : sched_(s), ledger_(l) {}

  // ---- waiting ----
  void wait(std::uint64_t ticket, PendingLease p) { pending_.emplace(ticket, std::move(p)); }
  std::optional<PendingLease> take_pending(std::uint64_t ticket);
  // Removes (and cancels in the scheduler) every waiting request `pred` accepts; returns them.
  std::vector<PendingLease> drop_pending(const std::function<bool(const PendingLease&)>& pred);
  std::size_t pending() const { return pending_.size(); }
  const std::unordered_map<std::uint64_t, PendingLease>& waiting() const { return pending_; }

  // ---- running ----
  LeaseRecord& start(std::uint64_t id, LeaseRecord r) { return running_[id] = std::move(r); }
  LeaseRecord* find(std::uint64_t id);
  const std::unordered_map<std::uint64_t, LeaseRecord>& running() const { return running_; }
  // A lease its live node ended: charged, its node credited, its resources back to the scheduler.
  std::optional<LeaseRecord> finish(std::uint64_t id, Clock::time_point now);
  // A lease that ended on a node that is no longer alive (its resources went with the node): charged only.
  std::optional<LeaseRecord> finish_on_dead_node(std::uint64_t id, Clock::time_point now);
  // Every lease on `node`, which died: charged up to now, blamed on the node, forgotten by the scheduler.
  std::vector<LeaseRecord> lose_node(std::uint32_t node, Clock::time_point now);
  // CPU lending while the lease's worker is parked; false when the lease or its node is gone.
  bool lend_cpus(std::uint64_t id);
  bool reclaim_cpus(std::uint64_t id);
  // The owner went away: its leases run on with nobody to tell.
  void forget_owner(OwnerId owner);
  // A driver came back: the job's leases answer to it again.
  void reassign(const std::string& job, OwnerId owner);

  // Moves `node`'s reputation by one outcome.
  void credit(std::uint32_t node, sched::Outcome o);
  // Whether the ledger changed since the last call (the head then writes it to its state).
  bool take_ledger_changed() { return std::exchange(ledger_changed_, false); }

 private:
  void charge(const LeaseRecord& l, Clock::time_point now);
  sched::Scheduler& sched_;
  sched::Ledger& ledger_;
  std::unordered_map<std::uint64_t, PendingLease> pending_;   // by scheduler ticket
  std::unordered_map<std::uint64_t, LeaseRecord> running_;    // by lease id
  bool ledger_changed_ = false;
};

}  // namespace iogrid::runtime::head
