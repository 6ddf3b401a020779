// FgdPolicy: fragmentation gradient descent (FGD, "Beware of Fragmentation", ATC'23).
// Assumptions: the mix of GPU requests seen so far predicts the next ones: the policy learns its typical shapes
// (WorkloadHistogram, with GPU models and CPUs) from the requests it places, or starts from expect()'s list;
// the shapes are re-read at 1, 2, 4, ... 1024 requests, then every 1024 (kept when no weight moved by 0.1%).
// Rules (fragmentation.hpp defines a node's fragmentation under the workload):
// - For every node that fits the request now - and, for a share of one GPU, every device of that node it could
//   go to - the growth of the node's fragmentation if it went there; the smallest growth wins; ties go to the
//   fuller node (smaller best-fit key, cluster_state.hpp), then the lowest index. The device chosen is the
//   one the allocation uses (chosen_device()).
// - CPU-only requests are placed the same way: their CPUs can strand a GPU node's free GPUs.
// - Before any GPU request was seen there is no workload: the choice is best fit.
// Search cut: nodes of one class in the same state (free CPUs, free fraction of each device) grow alike, so each
// distinct state is scored once; a class's nodes are visited tightest first (its GPU order), at most
// `states_per_class` distinct states and 2 x that many nodes of it (kStatesPerClass; 0: no cut,
// "fgd-exhaustive"). `iogrid bench scale` prints what
// the cut costs against the exhaustive search (fgd_cut_allocated_ratio).
#pragma once

#include <utility>
#include <vector>

#include "scheduler/fragmentation.hpp"
#include "scheduler/policy.hpp"

namespace iogrid::sched {

class FgdPolicy final : public SchedulingPolicy {
 public:
  static constexpr std::size_t kStatesPerClass = 4;
  static constexpr std::size_t kNodesPerState = 2;  // and at most 2 x that many nodes of a class visited
  explicit FgdPolicy(std::size_t states_per_class = kStatesPerClass) : states_per_class_(states_per_class) {}
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return states_per_class_ == 0 ? "fgd-exhaustive" : "fgd"; }
  std::optional<std::uint32_t> chosen_device() const override { return device_; }
  void expect(const std::vector<ResourceRequest>& requests) override;
  const std::vector<TaskShape>& shapes() const { return shapes_; }

 private:
  // Shapes of one GPU size and model list, with their CPU needs: a node with c free CPUs can run the ones
  // needing at most c (weight ok(c)); for the others all its free GPU capacity is stranded.
  struct Group {
    Milli gpus = 0;
    std::vector<std::string> models;
    std::vector<std::pair<Milli, double>> cpus;  // (CPUs, weight), the group's shapes
    double weight = 0;
    std::vector<double> ok;  // per CPU level of thresholds_: weight of the shapes needing at most that many
  };
  // The weights of shapes a node with c free CPUs can run, for every group: ok[level(c)].
  std::size_t level(Milli c) const {
    return static_cast<std::size_t>(std::upper_bound(thresholds_.begin(), thresholds_.end(), c) - thresholds_.begin());
  }
  struct ClassMasks {  // per class: which devices each group accepts
    std::uint64_t epoch = 0;
    bool uniform = true;          // every device of the class has the same model
    std::vector<std::uint8_t> m;  // groups x devices
    std::vector<std::uint8_t> any;
  };
  struct Base {  // a node state's per-group parts: stranded capacity (shares) or fully free devices (whole GPUs)
    Milli cpus = 0, free = 0;
    std::vector<Milli> part;
  };
  struct Memo {  // per node: what its current state scores (valid while version and epoch match)
    std::uint64_t version = ~std::uint64_t(0), epoch = 0, sig = 0;
    double frag = 0;
    Base base;
  };
  struct Change {
    std::uint32_t device;
    Milli before, after;
  };
  struct Scored {
    double growth = 0;
    Milli device_free = -1;  // the free fraction of the device a share goes to (-1: none)
  };
  void refresh_shapes();
  const ClassMasks& masks(std::int32_t cls, const Node& n);
  void fill_base(const ClassMasks& cm, const Node& n, Base& b) const;
  // Fragmentation after `changes` to the devices and `cpus` fewer CPUs (none: the node as it is).
  double frag_after(const ClassMasks& cm, const Base& b, Milli cpus, const std::vector<Change>& changes) const;
  Scored score(const ClassMasks& cm, const Node& n, const ResourceRequest& req, const Memo& memo);

  std::size_t states_per_class_;
  WorkloadHistogram workload_;
  bool given_ = false;  // expect() fixed the workload
  std::vector<TaskShape> shapes_;
  std::vector<Group> groups_;
  std::vector<Milli> thresholds_;  // every distinct CPU need of a shape, ascending
  std::uint64_t seen_ = 0, epoch_ = 1;
  std::vector<Memo> memo_;
  std::vector<ClassMasks> masks_;
  std::vector<std::pair<std::uint64_t, Scored>> decided_;  // this decision and class: state signature -> score
  std::vector<Milli> sorted_;
  std::vector<Change> changes_;
  const std::vector<Change> changes_none_;
  std::optional<std::uint32_t> device_;
};

}  // namespace iogrid::sched
