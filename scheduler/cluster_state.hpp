// ClusterState: the node table the scheduler decides on, indexed so that a decision among 10,000 nodes looks at
// a few dozen of them instead of all.
// Assumptions: a large cluster is made of few node classes: machines with the same totals, GPUs (model,
// memory, compute capability, verification, throughput) and labels (region included). Price, reputation and
// liveness vary per node and are checked per node.
// Rules:
// - Every change to a node's capacity goes through this class (allocate, release, reserve, adjust_cpus,
//   set_alive, replace), so the index always agrees with the nodes.
// - Each class keeps two orders of its nodes. By free CPUs; and, on GPU machines, by a GPU key
//   = 1000 x (fully free devices) + (largest free fraction among the partly used ones), which is exact for
//   both kinds of GPU request: k whole GPUs fit iff key >= 1000 k; a fraction r fits on some device iff key >= r.
// - candidates() visits, class by class, nodes that fit a request now, tightest first (smallest key) or
//   loosest first, at most `per_class` fitting nodes per class: GPU requests walk the GPU order from the
//   request's bound, CPU-only requests the CPU order. A class whose totals cannot hold the request is skipped
//   without looking at its nodes; which devices of a class match the request is decided once per class.
// - Each class also keeps its nodes by their best-fit key: the free capacity left, CPUs and GPUs each
//   normalised by the largest node of the cluster (key = free_cpu / max_cpu + free_gpu / max_gpu, kept as the
//   exact integer free_cpu x max_gpu + free_gpu x max_cpu; free_gpu sums the devices' free fractions). The
//   key is the same scale for every class, so best_fit() walks each class from the request's bound to its
//   first fitting node and returns the smallest key over all classes (ties: lowest index): exactly what scoring
//   every node would choose, usually after a few dozen nodes. A node larger than any before re-keys them all.
// - Every capacity change bumps the node's version(), so policies may cache what they derive from a node.
// - Dead nodes belong to no class. A request pinned to a node (`node`) looks at that node only.
// - Holds: a node held for a ticket (a starving gang, see scheduler.hpp) is offered only while that ticket is
//   being served (serve()); usable() says whether a node may be offered now.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "scheduler/feasibility.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::sched {

// How many fitting nodes per class the indexed policies and gangs score (see policy.hpp).
inline constexpr std::size_t kCandidatesPerClass = 8;

class ClusterState {
 public:
  enum class Order { tightest, loosest };
  // Return false to stop visiting this class (the next class follows).
  using Visitor = std::function<bool(const Node&)>;

  ClusterState() = default;
  explicit ClusterState(ClusterView view);

  // Adds a node at index size() (its `index` is set) and returns that index.
  std::uint32_t add(Node n);
  // Replaces node `i` (a rejoin, or new attributes such as verification results); keeps index `i`.
  void replace(std::uint32_t i, Node n);
  void set_alive(std::uint32_t i, bool alive);
  void set_reputation(std::uint32_t i, double reputation);
  void set_posted_price(std::uint32_t i, double price);

  // `device`: where a share of one GPU goes (see sched::allocate).
  std::optional<Allocation> allocate(std::uint32_t i, const ResourceRequest& req, std::optional<std::uint32_t> device = {});
  void release(const Allocation& a);
  bool reserve(const Allocation& a);
  // Lends (+) or takes back (-) CPUs of node `i` (a worker blocked in get/wait); may over-commit briefly.
  void adjust_cpus(std::uint32_t i, Milli delta);

  const ClusterView& view() const { return view_; }
  const std::vector<Node>& nodes() const { return view_.nodes; }
  const Node& node(std::uint32_t i) const { return view_.nodes[i]; }
  std::size_t size() const { return view_.nodes.size(); }
  std::size_t classes() const { return classes_.size(); }
  std::optional<std::uint32_t> find(const std::string& name) const;

  // Holds (see the rules above). hold(i, 0) lifts a hold.
  void hold(std::uint32_t i, std::uint64_t ticket) { held_for_[i] = ticket; }
  void clear_holds();
  std::uint64_t held_for(std::uint32_t i) const { return held_for_[i]; }
  void serve(std::uint64_t ticket) { serving_ = ticket; }
  bool usable(const Node& n) const { return held_for_[n.index] == 0 || held_for_[n.index] == serving_; }

  // Whether some live node could ever hold `req` (total capacity).
  bool feasible(const ResourceRequest& req) const;
  // Visits nodes that fit `req` now (see the rules above).
  void candidates(const ResourceRequest& req, Order order, std::size_t per_class, const Visitor& visit) const;
  // The node that fits `req` now with the smallest best-fit key (see the rules above), ties to the lowest index.
  std::optional<std::uint32_t> best_fit(const ResourceRequest& req) const;
  // A node's best-fit key now (free_cpu x max_gpu + free_gpu x max_cpu; smaller is fuller).
  Milli fit_key(const Node& n) const;
  Milli fit_key(std::uint32_t i) const { return hot_[i].left; }  // the same, as filed (live nodes)
  // Bumped on every change of node i's capacity or attributes.
  std::uint64_t version(std::uint32_t i) const { return version_[i]; }
  // The class of a live node (an index into the classes), -1 when dead.
  std::int32_t class_of(std::uint32_t i) const { return class_of_[i]; }

 private:
  // (key, node index), sorted: a flat vector, so walks and binary searches stay in cache (an update moves
  // up to a class's size of entries, cheap for classes of thousands).
  using Order_ = std::vector<std::pair<Milli, std::uint32_t>>;
  struct LeftEntry {
    Milli left = 0;
    std::uint32_t node = 0;
    Milli cpus = 0, gpu = 0, memory = 0;
    bool operator<(const LeftEntry& o) const { return left < o.left || (left == o.left && node < o.node); }
    bool operator==(const LeftEntry& o) const { return left == o.left && node == o.node; }
  };
  struct Class {
    std::uint32_t representative = 0;
    bool gpu = false;
    Order_ by_cpu;
    Order_ by_gpu;
    std::vector<LeftEntry> by_left;  // best-fit key, with the node's hot values inline (one sequential walk)
  };
  static std::string class_key(const Node& n);
  static Milli gpu_key(const Node& n);
  // fits(node, req, available) for a node of a class whose totals hold `req`; `match[d]`: device d matches.
  static bool fits_now(const Node& n, const ResourceRequest& req, const std::vector<char>& match);
  void unindex(std::uint32_t i);  // out of its class (dead, or about to change class)
  void index(std::uint32_t i);    // into the class its attributes name
  void file(std::uint32_t i);     // into its class's orders under its current free capacity
  void refile(std::uint32_t i);   // after a capacity change: same class, new keys

  ClusterView view_;
  std::vector<Class> classes_;
  std::unordered_map<std::string, std::uint32_t> class_by_key_;
  std::vector<std::int32_t> class_of_;  // per node; -1: dead
  // Per node, densely packed so a walk rejects most nodes without touching them: the keys it is filed under
  // (free CPUs, GPU key) and its free memory.
  struct Hot {
    Milli cpus = 0, gpu = 0, memory = 0, left = 0;
  };
  std::vector<Hot> hot_;
  std::unordered_map<std::string, std::uint32_t> by_name_;
  std::vector<std::uint64_t> held_for_;
  std::vector<std::uint64_t> version_;
  Milli max_cpu_ = 0, max_gpu_ = 0;  // the largest node's totals (best-fit normalisation)
  mutable std::vector<char> match_scratch_;  // candidates(): which devices of a class match (reused)
  std::uint64_t serving_ = 0;
};

}  // namespace iogrid::sched
