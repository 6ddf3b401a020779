// Trace replay: runs a trace's tasks through a real scheduling policy and measures what the FGD paper
// measures. Assumptions: a task either fits when it arrives or fails (no queueing); without inflation tasks
// leave at their deletion time; with inflation X tasks never leave and arrivals cycle through the trace until
// the GPU work that arrived reaches X times the cluster's GPUs (the saturation study).
// Protocols (ReplayOptions): tasks arrive in trace order (creation time) or in a seeded random order (a new
// shuffle each time the trace is used up: the FGD paper's protocol); `gpu_only` skips tasks without GPUs.
// Rules for the figures:
// - GPU allocation ratio: allocated GPU capacity / total, sampled each time arrived GPU work grows by 5% of
//   the cluster's GPUs.
// - Fragmented share: of the free GPU capacity, the part the typical task cannot use (a fraction smaller
//   than it asks for, a node without room for its CPUs or whole GPUs), averaged over the GPU task shapes of
//   the trace weighted by how often they occur.
// - Decision latency: the policy's select() plus the allocation, measured with the clock passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "scheduler/policy.hpp"
#include "scheduler/trace.hpp"

namespace iogrid::sched {

struct ReplayPoint {
  double arrived_gpu_ratio = 0;    // GPU work arrived so far / cluster GPUs
  double allocated_gpu_ratio = 0;  // GPU capacity in use / cluster GPUs
  double fragmented_share = 0;     // of the free GPU capacity
};

struct ReplayOptions {
  enum class Order { trace, random };
  Order order = Order::trace;
  std::uint64_t seed = 1;       // for Order::random
  bool gpu_only = false;        // skip tasks that ask for no GPU
  double inflate = 0;           // > 0: tasks never leave; stop when this many times the cluster's GPUs arrived
  bool expect_workload = false; // tell the policy the trace's tasks first (SchedulingPolicy::expect)
};

struct ReplayResult {
  std::string policy;
  std::size_t placed = 0, failed = 0;
  double gpu_placed = 0, gpu_failed = 0;  // in GPUs
  std::vector<ReplayPoint> curve;
  double final_allocated_gpu_ratio = 0;
  double final_fragmented_share = 0;
  double allocated_at_100 = 0;     // allocated GPU share when arrived GPU work first reached the cluster's GPUs
  double fragmented_at_100 = 0;    // (0 when it never did)
  double unallocated() const { return 1.0 - final_allocated_gpu_ratio; }
  double decisions_per_s = 0;
  double p50_ms = 0, p99_ms = 0;
};

using Clock = std::function<std::chrono::steady_clock::time_point()>;

ReplayResult replay(const std::vector<TraceNode>& nodes, const std::vector<TraceTask>& tasks, SchedulingPolicy& policy,
                    const ReplayOptions& options, const Clock& now);
// Trace order, every task, with `inflate` as above.
ReplayResult replay(const std::vector<TraceNode>& nodes, const std::vector<TraceTask>& tasks, SchedulingPolicy& policy,
                    double inflate, const Clock& now);

// The fragmented share of free GPU capacity in `view` for the GPU task shapes in `tasks`.
double fragmented_share(const ClusterView& view, const std::vector<TraceTask>& tasks);

}  // namespace iogrid::sched
