// Cluster traces: the nodes and tasks of a (real or synthetic) GPU cluster, in the CSV columns of the
// Alibaba GPU-sharing traces used by the FGD paper (ATC'23):
//   nodes: sn,cpu_milli,memory_mib,gpu,model[,region,price,reputation]
//   tasks: name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time (others ignored)
// `gpu_milli` is the fraction of one GPU (thousandths) for single-GPU tasks; `gpu_spec` lists accepted models
// separated by '|' (empty: any). Parsing reads streams (the library does no file I/O); a malformed row is an
// error naming its line and column. The generator is seeded, so a trace is reproducible.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

struct TraceNode {
  std::string sn;
  Milli cpu_milli = 0;
  std::int64_t memory_mib = 0;
  int gpus = 0;
  std::string model;
  std::string region;
  double price = 0;
  double reputation = 1.0;
};

struct TraceTask {
  std::string name;
  Milli cpu_milli = 0;
  std::int64_t memory_mib = 0;
  int num_gpu = 0;
  Milli gpu_milli = 0;       // fraction of one GPU when num_gpu == 1 (1000: whole)
  std::string gpu_spec;
  std::int64_t creation_time = 0;
  std::int64_t deletion_time = 0;
};

std::vector<TraceNode> read_nodes_csv(std::istream& in);   // throws std::invalid_argument "line N: ..."
std::vector<TraceTask> read_tasks_csv(std::istream& in);
void write_nodes_csv(std::ostream& out, const std::vector<TraceNode>& nodes);
void write_tasks_csv(std::ostream& out, const std::vector<TraceTask>& tasks);

// A heterogeneous cluster of `nodes` machines (8-GPU data-centre boxes, 4-GPU servers, 1-2 GPU rigs, CPU-only
// nodes) and `tasks` tasks in the shape of the Alibaba traces (mostly fractional single-GPU tasks, some
// multi-GPU ones, some CPU-only), arriving one per time unit with exponential lifetimes sized so a warm cluster
// is about 80% allocated.
struct SyntheticTrace {
  std::vector<TraceNode> nodes;
  std::vector<TraceTask> tasks;
};
// Task mixes: `standard` as above; `sharing` a GPU-sharing-heavy mix (60% single-GPU fractions of 0.3-0.7,
// CPU-hungry tasks) where careless placement strands GPU leftovers, the case fragmentation-aware placement targets.
enum class TraceMix { standard, sharing };
TraceMix parse_mix(const std::string& name);  // "default" or "sharing"
// dense_nodes: every node an 8-GPU box of one of six models (the 10,000-node, 80,000-GPU scale bench).
SyntheticTrace generate_trace(std::size_t nodes, std::size_t tasks, std::uint64_t seed,
                              TraceMix mix = TraceMix::standard, bool dense_nodes = false);

// The scheduler's view of trace nodes, and a task's resource request.
ClusterView to_view(const std::vector<TraceNode>& nodes);
ResourceRequest to_request(const TraceTask& t);

}  // namespace iogrid::sched
