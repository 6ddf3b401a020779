// HeadCore: the head of a cluster without its transport, in the manner of Ray's GCS managers. Both heads
// drive it: the embedded HeadActor (runtime/head_actor.cpp) with actor messages, the cluster HeadService
// (runtime/cluster/head_service.cpp) with Cap'n Proto envelopes. They decode what arrives, call one method
// here, and deliver what the core asks of them through HeadEvents. Everything the head decides lives here,
// in its parts:
//   NodeTable        nodes, heartbeats, health checking, uptime, object directory   (node_table.hpp)
//   JobTable         jobs and their owners                                         (job_table.hpp)
//   LeaseBook        waiting and granted leases, charges, blame                    (lease_book.hpp)
//   Verifier         GPU verification challenges and operator batches             (verifier.hpp)
//   ReservationBook  reservations ("clusters") and the ledger's reservation side  (reservations.hpp)
//   CodeStore, LogStore, the key-value store, and HeadStore (SQLite) when a state directory is given.
//   History        telemetry series and node and job events over time (history.hpp; in memory without state)
// Rules (beyond the parts'):
// - A lease request no node could ever satisfy is refused at once (never_fits), naming the closest node;
//   except for a moment after a restart with state, while nodes rejoin (unless it targets a reservation).
//   Others are granted now or queued; whatever capacity comes back (a lease ends, a node joins, a GPU is
//   verified, a reservation is created or deleted, a second's full pass) is offered to the queue.
// - A node that dies takes its leases with it: each is charged, blamed on the node and refused to its owner
//   (ask_again); every owner hears of the death; requests that only it could hold are refused.
// - A lease that ends on its node is charged and credited to the node; its owner hears ask_again (an owner
//   whose worker never attached asks again; others ignore it).
// - Fair share over time: each second, for every (holder, waiter) pair the scheduler says is owed
//   (Scheduler::owed), the holder's oldest lease that has run at least `yield_after`, is not drawn from a
//   gang or reservation, and whose node could hold the waiter's request once it returns, is asked to yield
//   (HeadEvents::yield_lease; once per lease). Its owner ends it at a task boundary and asks again if work is
//   left; the freed capacity goes to the queue, where the waiter, holding less, comes first.
// - A job ends once (finished, failed, stopped): its queued requests are dropped; nodes and its other owners
//   hear of it (the driver itself only when someone else ended it).
// - A reservation that ends (deleted, expired) refuses the requests queued for it and stops the jobs that ran
//   in it.
// - GPUs a node discovered itself join unverified and are challenged at once; declared GPUs are trusted until
//   `iogrid verify`. A verdict moves the node's reputation and its GPU's verified throughput.
// Time comes from the injected HeadClock, randomness from the injected entropy: tests run the core with a
// fake clock and a recording HeadEvents (tests/runtime/head/).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/head/clock.hpp"
#include "runtime/head/code_store.hpp"
#include "runtime/head/head_store.hpp"
#include "runtime/head/history.hpp"
#include "runtime/head/job_table.hpp"
#include "runtime/head/journal.hpp"
#include "runtime/head/lease_book.hpp"
#include "runtime/head/log_store.hpp"
#include "runtime/head/node_table.hpp"
#include "runtime/head/reservations.hpp"
#include "runtime/head/task_book.hpp"
#include "runtime/head/verifier.hpp"
#include "scheduler/policy.hpp"
#include "scheduler/pricing.hpp"
#include "scheduler/scheduler.hpp"

namespace iogrid::runtime::head {

struct HeadConfig {
  std::string state_dir;                            // SQLite tables, code, logs, the ledger's journal; empty: nothing kept
  double network_fee = sched::kDefaultNetworkFee;   // the network's share of each charge (scheduler/ledger.hpp)
  std::chrono::milliseconds pricing_round{60000};   // posted prices move this often (scheduler/pricing.hpp); 0: never
  std::string policy = sched::kDefaultPolicy;
  std::chrono::milliseconds node_timeout{2500};     // a heartbeating node is dropped after this long silent
  std::chrono::milliseconds driver_reconnect{30000};// a restored job fails when its driver is not back by then
  std::chrono::seconds rejoin_grace{10};            // after a restart or a node's death: infeasible requests wait this long
  std::map<std::string, double> user_weights;       // fair share between users (default 1 each)
  std::chrono::milliseconds yield_after{2000};      // a lease owed to a waiting job yields once this old (0: never)
  int verify_size = 8192;                           // GEMM size of the join-time GPU verification
  bool announce = true;                             // joins, jobs and verdicts logged at info (else debug)
  HistoryOptions history;                           // resolutions and retention of the history
  std::shared_ptr<History> history_store;           // a history to record into (shared with a dashboard); empty: its own
};

// What the core asks of its shell. Every call happens inside a call into the core, on the shell's thread.
enum class LeaseRefusal : std::uint8_t {
  never_fits,  // the request cannot run (infeasible, its reservation ended): fail the work
  ask_again,   // the lease is gone (its node died, or it ended before a worker attached): ask again if needed
};

// What a node needs to start a lease's worker. Views into the core's tables: valid during the call.
struct LeaseGrant {
  std::uint64_t lease = 0;
  OwnerId owner = 0;
  std::uint64_t owner_lease = 0;
  std::string_view job, code_hash, owner_host;
  std::uint16_t owner_port = 0;
  const sched::Allocation& alloc;  // alloc.lease == lease
};

class HeadEvents {
 public:
  virtual ~HeadEvents() = default;
  // Node `node` must start a worker for the grant's owner.
  virtual void start_lease(std::uint32_t node, const LeaseGrant& grant) = 0;
  virtual void refuse_lease(OwnerId owner, std::uint64_t owner_lease, const std::string& reason, LeaseRefusal why) = 0;
  // Fair share: ask `owner` to end its lease `owner_lease` after the task it runs (it asks again if it has work).
  virtual void yield_lease(OwnerId owner, std::uint64_t owner_lease) = 0;
  // Tell `owners` that node `node` died.
  virtual void node_died(std::uint32_t node, const std::string& name, const std::string& why,
                         const std::vector<OwnerId>& owners) = 0;
  // Job `job` ended: every node stops its workers; `owners` (its owners but the driver, unless an operator or
  // its reservation ended it) stop too.
  virtual void job_ended(const std::string& job, const std::string& why, const std::vector<OwnerId>& owners) = 0;
  // Health checking found `node` silent: end its connection (the shell then calls HeadCore::node_lost).
  virtual void drop_node(std::uint32_t node, const std::string& why) = 0;
  // Verification traffic to a node.
  virtual void send_challenge(std::uint32_t node, const Challenge& c) = 0;
  virtual void send_rows_to_open(std::uint32_t node, std::uint64_t id, const std::vector<int>& rows) = 0;
  // The answer to an operator command that finished later (verify).
  virtual void admin_answer(OwnerId requester, std::uint64_t request_id, bool ok, const std::string& body) = 0;
};

// HeadEvents that ignore every call: a base for shells that need only some (the embedded head), and what a
// bench or tool driving a core without any shell passes.
class IgnoreHeadEvents : public HeadEvents {
 public:
  void start_lease(std::uint32_t, const LeaseGrant&) override {}
  void refuse_lease(OwnerId, std::uint64_t, const std::string&, LeaseRefusal) override {}
  void yield_lease(OwnerId, std::uint64_t) override {}
  void node_died(std::uint32_t, const std::string&, const std::string&, const std::vector<OwnerId>&) override {}
  void job_ended(const std::string&, const std::string&, const std::vector<OwnerId>&) override {}
  void drop_node(std::uint32_t, const std::string&) override {}
  void send_challenge(std::uint32_t, const Challenge&) override {}
  void send_rows_to_open(std::uint32_t, std::uint64_t, const std::vector<int>&) override {}
  void admin_answer(OwnerId, std::uint64_t, bool, const std::string&) override {}
};

struct HeadStats {
  std::uint64_t leases_granted = 0;
  std::uint64_t leases_queued = 0;      // requests that had to wait
  std::uint64_t leases_infeasible = 0;  // refused as never fitting
  std::uint64_t leases_yielded = 0;     // asked to yield to a job owed a fair share
};

// A node joining, as its daemon (or the embedded runtime) describes it.
struct Join {
  sched::Node node;                 // resources, GPUs, labels, price, name wanted
  std::string host;                 // where peers reach it
  transport::Reachability reach;    // observed address and port, its own address, its data port
  Liveness liveness = Liveness::heartbeats;
  // A daemon coming back (after a dropped connection or a head restart): its old index and name, and the
  // leases it still runs.
  bool rejoin = false;
  std::uint32_t previous_index = 0;
  std::string previous_name;
  struct RunningLease {
    std::uint64_t lease = 0, owner_lease = 0;
    std::string job;
    sched::Allocation alloc;
  };
  std::vector<RunningLease> leases;
};

struct Joined {
  std::uint32_t index = 0;
  std::string name;
  bool rejoined = false;
};

// A driver, or a worker submitting nested tasks, registering with the head.
struct Registration {
  std::string driver;               // "name@address"
  std::string code_hash;
  std::string owner_host;           // where it listens for its workers
  std::uint16_t owner_port = 0;
  transport::Reachability reach;    // as the head sees the connection (observed, its own address, owner port)
  std::string user, submission;     // fair-share user (empty: default); `iogrid job submit`'s id
  double weight = 0;                // 0: 1
  std::string parent_job;           // a worker acting for its job
  std::string resume_job;           // a driver coming back to its job
};

struct Registered {
  bool ok = false;
  std::string job;                  // ok: the job it acts for
  bool need_code = false;           // ok: the head lacks the job's executable
  std::string error;                // !ok: why (an unknown or ended job)
};

class HeadCore {
 public:
  HeadCore(HeadConfig config, HeadEvents& events, HeadClock clock = {},
           Verifier::Entropy entropy = {});
  ~HeadCore();
  HeadCore(const HeadCore&) = delete;
  HeadCore& operator=(const HeadCore&) = delete;

  // ---- nodes ----
  // Enters a node in the tables. The shell then acknowledges it to the node and calls admit().
  Joined join(Join j);
  // What a joined node gets next: its unverified GPUs are challenged, queued work is offered to it.
  void admit(std::uint32_t node);
  void heartbeat(std::uint32_t node, StoreFigures store, std::vector<gpu::Telemetry> telemetry);
  // The head dialled `node`'s data port back at `host` (its observed address): whether it answered. Ignored
  // when the node has since rejoined from elsewhere.
  void dialled_back(std::uint32_t node, const std::string& host, std::uint16_t port, bool open);
  // The head dialled job `job`'s driver back at host:port: whether it answered (workers on other machines must).
  void driver_dialled_back(const std::string& job, const std::string& host, std::uint16_t port, bool open);
  // The node's connection ended (or it was dropped): it is dead.
  void node_lost(std::uint32_t node, const std::string& why);
  void objects_added(std::uint32_t node, const std::vector<std::uint64_t>& keys, const std::vector<std::uint64_t>& sizes);
  void objects_removed(std::uint32_t node, const std::vector<std::uint64_t>& keys);

  // ---- jobs and owners ----
  Registered register_owner(OwnerId owner, const Registration& r);
  // The owner's connection ended: its waiting requests are dropped; a driver's job fails.
  void owner_gone(OwnerId owner, const std::string& why);
  // The driver says its job is done.
  void driver_finished(OwnerId owner, const std::string& reason);
  // An operator stops a job; false when there is no such job.
  bool stop_job(const std::string& job, const std::string& who);

  // ---- leases ----
  // Grants now, queues, or refuses (through HeadEvents). False when `owner` never registered.
  bool request_lease(OwnerId owner, std::uint64_t owner_lease, const sched::ResourceRequest& request);
  void lease_ended(std::uint64_t lease);
  // The lease's worker parked in get/wait (lend its CPUs), or resumed (take them back).
  void worker_blocked(std::uint64_t lease);
  void worker_resumed(std::uint64_t lease);

  // ---- operators ----
  // An operator command (reservations.hpp's, "logs" {job}, "tasks" {job, after_ms, limit}, and "verify" {node, size}). Returns the answer's JSON now, or
  // nullopt when it comes later through HeadEvents::admin_answer. Throws iogrid::Error with the reason.
  std::optional<std::string> admin(OwnerId requester, std::uint64_t request_id, const std::string& who,
                                   const std::string& command, const std::string& args_json);
  void verify_committed(std::uint32_t node, std::uint64_t id, const std::vector<std::uint8_t>& root, double seconds,
                        const std::string& error);
  void verify_opened(std::uint32_t node, std::uint64_t id, const std::vector<gpu::verify::Prover::Opening>& openings);

  // ---- tasks (as their owners report them) ----
  void task_report(OwnerId owner, const std::string& json);
  const TaskBook& tasks() const { return tasks_; }

  // ---- stores ----
  void kv_put(const std::string& key, std::string value);
  std::optional<std::string> kv_get(const std::string& key) const;
  CodeStore& code() { return code_; }
  // Job output: to a job, or to a submission whose job may not exist yet.
  void append_log(const std::string& job, const std::string& submission, const std::string& text);
  std::optional<std::string> logs(const std::string& job) const { return logs_.get(job); }
  bool has_job(const std::string& job) { return jobs_.find(job) != nullptr; }

  // Housekeeping, about every 100 ms: health checking, uptime, expiries, a full scheduling pass each second,
  // the state written.
  void tick();

  // ---- what the shells show ----
  const sched::Scheduler& scheduler() const { return sched_; }
  sched::Scheduler& scheduler() { return sched_; }
  const NodeTable& nodes() const { return nodes_; }
  void set_heard(NodeTable::Heard heard) { nodes_.set_heard(std::move(heard)); }
  const JobTable& jobs() const { return jobs_; }
  const LeaseBook& leases() const { return leases_; }
  const sched::Ledger& ledger() const { return ledger_; }
  const HeadStats& stats() const { return stats_; }
  Clock::time_point now() const { return clock_.now(); }
  const HeadConfig& config() const { return config_; }
  // Thread-safe: the dashboard's thread reads it while the head records.
  std::shared_ptr<History> history() const { return history_; }

 private:
  void restore();
  void save_node(std::uint32_t index);
  void save_job(const JobRecord& j);
  void save_books();
  void journal_charges();  // the ledger's new charges into the journal (with state), signed every kCheckpointEvery s
  void pricing_round(Clock::time_point now);  // every config_.pricing_round: the controller on each market
  std::string market_json(const nlohmann::json& args) const;  // admin "market": prices, history, rules, a quote
  void record_history(Clock::time_point now);
  std::uint64_t next_lease_id();
  void hand_out(std::vector<sched::Grant> grants);
  bool grant(OwnerId owner, std::uint64_t owner_lease, const sched::ResourceRequest& request, const sched::Allocation& alloc);
  void full_pass();
  void ask_yields();
  void refuse_infeasible_pending();
  void end_job(JobRecord& j, JobState to, const std::string& why);
  void reservation_ended(std::uint64_t ticket, const std::string& creator, const std::string& how);
  std::size_t start_verification(std::uint32_t node, int n, std::uint64_t batch);
  void verification_done(const VerificationDone& done);
  // Spot checks an owner reports (runtime/spot_checker.hpp): reputation, the history, the ledger's journal.
  void spot_checks(const std::string& job, const nlohmann::json& records);
  std::vector<OwnerId> all_owners() const;

  HeadConfig config_;
  HeadEvents& events_;
  HeadClock clock_;
  sched::Scheduler sched_;
  sched::Ledger ledger_;
  sched::PriceBook prices_;           // posted prices per GPU model and region (scheduler/pricing.hpp)
  Clock::time_point last_pricing_{};
  std::unique_ptr<Journal> journal_;  // the ledger's entries, hash-chained and signed (with a state directory)
  Clock::time_point last_checkpoint_{};
  NodeTable nodes_;
  JobTable jobs_;
  LeaseBook leases_;
  ReservationBook reservations_;
  Verifier verifier_;
  CodeStore code_;
  LogStore logs_;
  TaskBook tasks_;
  bool task_report_warned_ = false;
  bool check_report_warned_ = false;
 public:
  struct CheckTally {
    std::uint64_t passed = 0, failed = 0;
  };
  // Per provider node (by name): spot checks it passed and failed.
  const std::map<std::string, CheckTally>& check_tallies() const { return check_tallies_; }
  const std::map<std::string, std::uint64_t>& check_verdicts() const { return check_verdicts_; }

 private:
  std::map<std::string, CheckTally> check_tallies_;
  std::map<std::string, std::uint64_t> check_verdicts_;  // cluster-wide counts by verdict
  std::map<std::string, std::string> kv_;
  std::unique_ptr<HeadStore> store_;
  std::shared_ptr<History> history_;
  std::map<std::string, std::pair<double, double>> ledger_recorded_;  // node -> (GPU-seconds, cost) last recorded
  Clock::time_point last_history_flush_{}, last_history_checkpoint_{}, last_history_compact_{}, last_totals_{};
  std::map<std::uint32_t, Clock::time_point> last_telemetry_;  // by node: telemetry is sampled, not every beat
  HeadStats stats_;
  bool clusters_changed_ = false;
  std::uint64_t lease_counter_ = 0, lease_reserved_ = 0;
  Clock::time_point rejoin_grace_until_{};
  Clock::time_point last_full_pass_{};
  int info_;  // the spdlog level of announcements
};

}  // namespace iogrid::runtime::head
