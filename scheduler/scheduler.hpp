// Scheduler: the decision loop a head runs. It owns the cluster state, a placement policy, the queue of work
// waiting for resources (task leases, actors, gangs) and the gangs that hold reservations.
// Assumptions: callers check feasibility first (ClusterState::feasible / gang_feasible) and fail work that can
// never run; the clock is injected so tests control waiting times; jobs are identified by name.
// Rules:
// - Priorities: higher priority work is always considered first.
// - Weighted fair share (between users, then between the jobs of a user): among work of equal priority the
//   next decision goes to the user, then the job, with the smallest dominant share per weight: the largest of
//   (CPUs held / cluster CPUs, GPUs held / cluster GPUs), divided by the weight (default 1). Jobs with equal
//   shares take turns: the one granted least recently goes first (then the oldest item).
// - Within a job, waiting work is grouped by shape (equal requests); the oldest head among its shapes and
//   gangs goes first. A shape or gang that does not fit now is passed over for the rest of the round, so
//   smaller work behind it still runs (backfill).
// - No starvation: once the oldest waiting item has waited `starvation_after`, it is starving: target nodes
//   that could hold it on an empty cluster are chosen and held for it (ClusterState holds): no other work is
//   placed there, so as their running work ends it fits and runs. One item starves at a time; holds are lifted
//   when it runs or is cancelled, and re-chosen when a held node dies.
// - Work targeting a gang's bundle draws on that bundle's reservation (BundlePool) and is queued like any other.
//   A request with `reservation` set targets any bundle of that gang (a user-facing reservation, "cluster").
// - Fair share over time (owed): weighted shares are instantaneous, so with more jobs than the cluster has room
//   for, a job holding its leases until its queue is empty would starve the rest. A job waiting at
//   cluster scope is owed capacity by a holder whose weighted share (user first, then job) is at least the
//   waiter's after one more of its requests: owed() names such (holder, waiter) pairs, each waiter once, the
//   holder with the largest share first. The shell asks a lease of each holder to end at a task boundary
//   (runtime/head: only leases older than a quantum, so equal jobs take turns instead of swapping on every
//   task); the capacity then goes to the queue in fair-share order, where the waiter comes first. A holder
//   whose own waiting work has a higher priority than the waiter's owes nothing; gang requests and work
//   inside reservations are never owed.
// - Memory: a queued request is a 40-byte entry in a per-shape deque; its request is stored once per shape.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "scheduler/cluster_state.hpp"
#include "scheduler/placement_group.hpp"
#include "scheduler/policy.hpp"

namespace iogrid::sched {

inline constexpr std::uint32_t kAnyBundle = 0xffffffffu;

struct BundleRef {
  std::uint64_t gang = 0;  // the gang's ticket
  std::uint32_t index = 0; // kAnyBundle: whichever bundle has room
};

struct Share {
  std::string user = "default";
  double weight = 1;       // the job's weight within its user
  double user_weight = 1;  // the user's weight among users
};

struct Grant {
  std::uint64_t ticket = 0;
  std::string job;
  std::vector<Allocation> allocations;  // one for a request, one per bundle for a gang
  std::string region;                   // a same-region gang's region
  bool gang = false;
};

struct SchedulerOptions {
  std::chrono::milliseconds starvation_after{30000};
};

class Scheduler {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  explicit Scheduler(std::unique_ptr<SchedulingPolicy> policy, SchedulerOptions opts = {},
                     Clock now = [] { return std::chrono::steady_clock::now(); });

  // Nodes join, die and change through the state; call node_changed() after a node died or was replaced.
  ClusterState& cluster() { return state_; }
  const ClusterState& cluster() const { return state_; }
  SchedulingPolicy& policy() { return *policy_; }
  void node_changed();

  void set_share(const std::string& job, Share share);

  // Queues a request (a task lease or an actor). Returns its ticket.
  std::uint64_t submit(const std::string& job, const ResourceRequest& req, int priority = 0,
                       std::optional<BundleRef> bundle = std::nullopt);
  // Queues a gang: granted all at once, one allocation per bundle; its ticket names the gang afterwards.
  std::uint64_t submit_gang(const std::string& job, GangRequest gang, int priority = 0);
  // Places a gang now or not at all (a user-facing reservation: never queued). Its ticket names it afterwards.
  std::optional<Grant> reserve_now(const std::string& job, const GangRequest& gang);
  // Restart: takes back a gang placed before, under its old ticket, without touching node capacity (its nodes
  // are not back yet; each rejoining node takes its bundles out again, see bundles_on).
  void adopt_gang(std::uint64_t ticket, const std::string& job, const std::vector<Allocation>& bundles);
  // The gang bundles placed on `node` (a rejoining node reserves them before anything else).
  std::vector<Allocation> bundles_on(std::uint32_t node) const;
  // A running lease found on a rejoining node: put back into a bundle on its node whose room holds exactly it
  // (sets a.gang/a.bundle); false when no bundle does (it then holds node capacity).
  bool adopt_into_bundle(Allocation& a);
  // Removes queued work, or a placed gang with its reservation.
  void cancel(std::uint64_t ticket);
  // The usual path for one request: queued behind the waiting requests of its shape, and then that shape's
  // queue is placed from its head for as long as it fits (nothing of a shape waits while a later one of the
  // same shape could run). `grants` holds what was placed, this request's grant included when it fits now.
  struct Decision {
    std::uint64_t ticket = 0;
    std::vector<Grant> grants;
    const Grant* mine() const {
      for (const auto& g : grants)
        if (g.ticket == ticket) return &g;
      return nullptr;
    }
  };
  Decision submit_or_place(const std::string& job, const ResourceRequest& req, int priority = 0,
                           std::optional<BundleRef> bundle = std::nullopt);
  // Decides as much as fits now, in the order of the rules above (a full pass: after nodes join, gangs are
  // removed, or on a timer).
  std::vector<Grant> schedule();
  // After capacity returned on one node (a release there): only that node changed, so waiting work is tried on
  // it alone, in the order of the rules above (shares as they were when the pass began). Cheap enough to run
  // on every release.
  std::vector<Grant> schedule_freed(std::uint32_t node);
  // Books an allocation the caller made directly on cluster() (a fast path when nothing waits) to `job`.
  void account(const std::string& job, const Allocation& a) {
    if (!a.gang) account(this->job(job), a, +1);  // work inside a gang is on the gang's account
  }
  // Forgets a granted allocation whose node died (nothing to give back to the node; the job's share drops).
  void forget(const std::string& job, const Allocation& a) {
    if (!a.gang) account(this->job(job), a, -1);
  }
  // Gives back a granted request's allocation (to its bundle when it was drawn from one).
  void release(const std::string& job, const Allocation& a);

  std::size_t queued() const { return queued_; }
  std::size_t gangs_placed() const { return gangs_.size(); }
  std::uint64_t starving() const { return starving_; }
  const GangPlacement* gang(std::uint64_t ticket) const;
  // Whether `req` could ever run where it asks to: inside its reservation when it names one (a bundle could
  // hold it), else on the cluster. `why` explains a no.
  bool feasible(const ResourceRequest& req, std::string* why = nullptr) const;
  // Dominant share of `job` now (what fair share compares, before weights).
  double dominant_share(const std::string& job) const;
  // Dominant share of `user` now: the larger of its jobs' CPUs and GPUs held over the cluster's.
  double user_share(const std::string& user) const { return user_usage(user); }
  // Fair share over time (see the rules above): who owes capacity to whom now.
  struct Owed {
    std::string holder, waiter;
    ResourceRequest request;  // the head of the waiter's oldest waiting shape
  };
  std::vector<Owed> owed() const;

 private:
  struct Entry {  // one queued request: 24 bytes in its shape's deque
    std::uint64_t ticket;
    std::uint64_t seq;
    std::int64_t since_ns;
  };
  // A shape: equal requests aimed at the same place (the cluster, or one gang's bundle).
  using ShapeKey = std::tuple<std::uint32_t, std::uint64_t, std::uint32_t>;  // (shape id, gang, bundle)
  struct PendingGang {
    std::uint64_t ticket;
    std::uint64_t seq;
    std::int64_t since_ns;
    GangRequest gang;
  };
  struct Level {  // a job's waiting work at one priority
    std::map<ShapeKey, std::deque<Entry>> shapes;
    std::deque<PendingGang> gangs;
  };
  struct Job {
    std::string name;
    Share share;
    Milli cpus_held = 0, gpus_held = 0;
    std::uint64_t last_grant = 0;  // when it was last granted anything (a counter): equal shares take turns
    std::map<int, Level, std::greater<int>> levels;
  };
  struct PlacedGang {
    std::string job;
    GangPlacement placement;
    std::vector<BundlePool> pools;
  };
  // Where a waiting item is: its job and priority, and either a shape (its head) or a gang.
  struct Item {
    Job* job = nullptr;
    int priority = 0;
    std::optional<ShapeKey> shape;
    std::uint64_t gang = 0;  // a pending gang's ticket
    std::uint64_t ticket = 0;
    std::uint64_t seq = 0;
    std::int64_t since_ns = 0;
  };

  std::uint32_t intern(const ResourceRequest& req);
  ShapeKey shape_key(const ResourceRequest& req, std::optional<BundleRef> bundle);
  std::int64_t now_ns() const;
  double usage(const Job& j) const;
  double user_usage(const std::string& user) const;
  Job& job(const std::string& name);
  // The oldest item of `lvl` not in `blocked`.
  std::optional<Item> oldest(Job& j, int priority, Level& lvl, const std::unordered_set<std::uint64_t>& blocked);
  // Tries to place `it` now; on success pops it and returns the grant.
  // `on_node`: only that node may be used (the freed pass).
  std::optional<Grant> try_place(const Item& it, std::optional<std::uint32_t> on_node = std::nullopt);
  std::optional<Grant> try_starving(std::optional<std::uint32_t> freed);
  void account(Job& j, const Allocation& a, int sign);
  void check_starvation();
  void choose_holds();
  std::optional<Item> find_item(std::uint64_t ticket);
  void drop_empty(Job& j);

  ClusterState state_;
  std::unique_ptr<SchedulingPolicy> policy_;
  SchedulerOptions opts_;
  Clock now_;
  std::map<std::string, Job> jobs_;
  std::vector<ResourceRequest> shapes_;
  std::unordered_map<std::string, std::uint32_t> shape_ids_;
  std::unordered_map<std::uint64_t, PlacedGang> gangs_;
  std::uint64_t next_ticket_ = 1, next_seq_ = 1;
  std::size_t queued_ = 0;
  std::uint64_t grants_ = 0;
  std::uint64_t starving_ = 0;  // ticket of the starving item, 0: none
  std::unordered_map<std::uint64_t, bool> cancelled_;  // queued tickets cancelled, dropped when reached
  Milli cluster_cpus_ = 0, cluster_gpus_ = 0;
};

}  // namespace iogrid::sched
