// GPU fragmentation (after the FGD paper, ATC'23): the part of a node's free GPU capacity that a task of a
// given shape cannot use. Rules: a node without room for the shape's CPUs strands all its free GPU capacity;
// for a fraction r of one GPU, devices with less than r free are stranded; for k whole GPUs, a node with
// fewer than k fully free devices strands all its free capacity, otherwise its partly used devices are.
// A workload is a set of shapes weighted by how often they occur; fragmentation is the weighted sum.
#pragma once

#include <map>
#include <vector>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

struct TaskShape {
  Milli gpus = 0;   // < 1000: a fraction of one GPU; otherwise whole GPUs
  Milli cpus = 0;
  double weight = 1;
};

// Free GPU capacity (milli) of `n` that a task of shape `s` could not use.
Milli unusable_gpu(const Node& n, const TaskShape& s);
// Expected stranded free GPU capacity of `n` under `workload` (milli).
double node_fragmentation(const Node& n, const std::vector<TaskShape>& workload);
// How much node_fragmentation(n) grows if `a` (a plan for `n`) were taken.
double fragmentation_growth(const Node& n, const Allocation& a, const std::vector<TaskShape>& workload);

// A running histogram of the GPU request shapes a scheduler has seen (bounded: the most frequent kept).
class WorkloadHistogram {
 public:
  void observe(const ResourceRequest& r);
  std::vector<TaskShape> shapes() const;  // weights sum to 1; empty before any GPU request

 private:
  std::map<std::pair<Milli, Milli>, std::uint64_t> counts_;
  std::uint64_t total_ = 0;
};

}  // namespace iogrid::sched
