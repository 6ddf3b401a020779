// GPU fragmentation (after the FGD paper, "Beware of Fragmentation", ATC'23): the part of a node's free GPU
// capacity that a task of a given shape cannot use.
// Rules, for a node with free GPU capacity F (the sum of its devices' free fractions):
// - a node where the shape cannot run at all strands all of F: too few free CPUs, no device of an accepted
//   model, or (k whole GPUs) fewer than k fully free matching devices;
// - otherwise, for a share r of one GPU, the free capacity of devices with less than r free (or of a model it
//   does not accept) is stranded; for k whole GPUs, everything except the fully free matching devices.
// A workload is a set of shapes weighted by how often they occur; a node's fragmentation is the weighted sum,
// and FGD places each task where that sum grows least. CPU-only shapes strand all of F everywhere, so they
// cannot change a choice and are left out of workloads.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

struct TaskShape {
  Milli gpus = 0;                   // < 1000: a share of one GPU; otherwise whole GPUs
  Milli cpus = 0;
  std::vector<std::string> models;  // accepted GPU models; empty: any
  double weight = 1;
};

// Free GPU capacity (milli) of `n` that a task of shape `s` could not use.
Milli unusable_gpu(const Node& n, const TaskShape& s);
// Expected stranded free GPU capacity of `n` under `workload` (milli).
double node_fragmentation(const Node& n, const std::vector<TaskShape>& workload);
// How much node_fragmentation(n) grows if `a` (a plan for `n`) were taken.
double fragmentation_growth(const Node& n, const Allocation& a, const std::vector<TaskShape>& workload);

// The shapes of the GPU requests a scheduler has seen, weighted by count. Bounded: at most kTracked distinct
// shapes are counted (a new shape past that replaces the rarest); shapes() returns the most frequent ones that
// together make up `coverage` of the requests (at most kTypical), weights summing to 1 (the paper's "typical
// tasks").
class WorkloadHistogram {
 public:
  static constexpr std::size_t kTracked = 256;
  static constexpr std::size_t kTypical = 64;
  void observe(const ResourceRequest& r);
  std::vector<TaskShape> shapes(double coverage = 0.99) const;  // empty before any GPU request
  std::uint64_t total() const { return total_; }

 private:
  using Key = std::tuple<Milli, Milli, std::vector<std::string>>;
  std::map<Key, std::uint64_t> counts_;
  std::uint64_t total_ = 0;
};

}  // namespace iogrid::sched
