// Cluster traces: the nodes and tasks of a (real or synthetic) GPU cluster, in the CSV columns of the
// Alibaba GPU-sharing traces used by the FGD paper (ATC'23), columns in any order, found by header name:
//   nodes: cpu_milli, gpu required; sn, memory_mib, model, region, price, reputation optional
//   tasks: cpu_milli, num_gpu required; name, memory_mib, gpu_milli, gpu_spec, qos, region, max_price (or
//          price), creation_time, deletion_time optional; other columns (pod_phase, scheduled_time...) ignored
// `gpu_milli` is the fraction of one GPU (thousandths) for single-GPU tasks (absent: whole GPUs); `gpu_spec`
// lists accepted models separated by '|' (empty: any). Absent optional columns: a node file without
// memory_mib constrains no memory; tasks without creation_time arrive in file order; a task without a
// deletion time never leaves. Cells may be quoted (RFC 4180). Parsing reads streams (the library does no file
// I/O); a malformed row is an error naming its line and column. The generator is seeded, so a trace is
// reproducible.
#pragma once

#include <cstdint>
#include <climits>
#include <iosfwd>
#include <string>
#include <vector>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

inline constexpr std::int64_t kUnlimitedMemoryMib = std::int64_t(1) << 50;
inline constexpr std::int64_t kNeverLeaves = INT64_MAX;

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
  std::string qos;           // kept as read (LS, BE, Burstable...); placement ignores it
  std::string region;        // preferred region (soft)
  double max_price = 0;      // price ceiling per GPU-hour; 0: none
  std::int64_t creation_time = 0;
  std::int64_t deletion_time = kNeverLeaves;
};

std::vector<TraceNode> read_nodes_csv(std::istream& in);   // throws std::invalid_argument "line N: ..."
std::vector<TraceTask> read_tasks_csv(std::istream& in);
void write_nodes_csv(std::ostream& out, const std::vector<TraceNode>& nodes);
void write_tasks_csv(std::ostream& out, const std::vector<TraceTask>& tasks);

// A cluster of `nodes` machines and `tasks` tasks in the proportions production GPU-sharing traces report
// (see generate_trace in trace.cpp for the tables): 2- to 8-GPU machines of seven models; 13% CPU-only tasks,
// 37% shares of one GPU, 46% whole GPUs, 4% several GPUs. Tasks arrive one per time unit with exponential
// lifetimes sized so a warm cluster is about 80% allocated.
struct SyntheticTrace {
  std::vector<TraceNode> nodes;
  std::vector<TraceTask> tasks;
};
// Task mixes (the variants the FGD paper replays): `standard` ("default") as above, 1 in 50 GPU tasks limited
// to some models; `sharing` every single-GPU task takes a share of one GPU; `constrained` a third of the GPU
// tasks accept only one model or one family.
enum class TraceMix { standard, sharing, constrained };
TraceMix parse_mix(const std::string& name);  // "default", "sharing" or "constrained"
// dense_nodes: every node an 8-GPU box of one of six models (the 10,000-node, 80,000-GPU scale bench).
SyntheticTrace generate_trace(std::size_t nodes, std::size_t tasks, std::uint64_t seed,
                              TraceMix mix = TraceMix::standard, bool dense_nodes = false);

// The scheduler's view of trace nodes, and a task's resource request.
ClusterView to_view(const std::vector<TraceNode>& nodes);
ResourceRequest to_request(const TraceTask& t);

}  // namespace iogrid::sched
