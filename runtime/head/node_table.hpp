// NodeTable: what the head knows of each node beyond its resources (those live in the scheduler's
// ClusterState under the same index): where it is, its last heartbeat and store figures, its GPUs'
// telemetry and verification verdicts, the leases it runs and the object copies it holds.
// Rules:
// - A node joins under a fresh index; a name already taken by a live node gets a suffix (gpu, gpu-2, ...).
//   A node that rejoins (same daemon after a dropped connection or a head restart) keeps its index and name.
// - Health: a node that sends heartbeats is silent once `timeout` has passed since its last one; the head
//   drops it (its connection closes, and so it dies). Nodes inside the head's process (embedded mode) send
//   none and are never silent. Only time the head itself was listening counts: when the checks stop for a
//   while (the head was busy, or not scheduled), that gap is not held against any node, whose heartbeats
//   were waiting to be read.
// - Uptime: every full hour a node stays connected and healthy counts once for its reputation.
// The clock is the caller's (HeadCore passes HeadClock::now()); no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "gpu/devices.hpp"
#include "runtime/head/clock.hpp"
#include "runtime/transport/reachability.hpp"
#include "scheduler/cluster_state.hpp"

namespace iogrid::runtime::head {

enum class Liveness : std::uint8_t {
  heartbeats,  // a node daemon: healthy while its heartbeats arrive
  in_process,  // a virtual node of an embedded cluster: alive as long as the head
};

struct StoreFigures {
  std::int64_t used = 0, capacity = 0, objects = 0, spilled = 0;
};

struct NodeRecord {
  Liveness liveness = Liveness::heartbeats;
  std::string host;                                // the address its peers reach it at
  transport::Reachability reach;                   // how the head sees it, and whether it can be dialled
  Clock::time_point last_heartbeat{};
  Clock::time_point uptime_credited{};             // the next hour of uptime counts from here
  StoreFigures store;
  std::vector<gpu::Telemetry> telemetry;           // from the last heartbeat
  std::string verification;                        // one line per GPU: the last verdict
  std::uint32_t active_leases = 0;
  std::map<std::uint64_t, std::uint64_t> objects;  // the object directory: key -> size of the copy held here
};

struct Silent {
  std::uint32_t node = 0;
  std::chrono::milliseconds for_how_long{0};
};

class NodeTable {
 public:
  NodeTable(sched::ClusterState& state, std::chrono::milliseconds timeout) : state_(state), timeout_(timeout) {}

  // A node not seen before: added to the cluster state under the next index, with a name no live node has.
  std::uint32_t add(sched::Node node, NodeRecord rec, Clock::time_point now);
  // A node coming back under its old index (its scheduler record is replaced by `node`).
  void rejoin(std::uint32_t index, sched::Node node, NodeRecord rec, Clock::time_point now);
  // A slot for a node known from the head's state, not connected yet (restart).
  void restore(sched::Node node, NodeRecord rec);
  // Marks a node dead in the scheduler's state; returns false when it already was.
  bool mark_dead(std::uint32_t index);

  void heartbeat(std::uint32_t index, StoreFigures store, std::vector<gpu::Telemetry> telemetry, Clock::time_point now);
  // Nodes with heartbeats whose last one is older than the timeout. Call it about every `check_period`: a gap
  // longer than that between two calls is the head's own stall and is credited to every node.
  std::vector<Silent> silent(Clock::time_point now);
  // A second source of life signs (the liveness datagrams, transport/liveness.hpp): when a node was last heard
  // there. A node silent on its connection but heard there within the timeout is not silent.
  using Heard = std::function<std::optional<Clock::time_point>(std::uint32_t node)>;
  void set_heard(Heard heard) { heard_ = std::move(heard); }
  static constexpr std::chrono::milliseconds kCheckPeriod{100};
  // Live nodes that completed another healthy hour (each is counted once per hour).
  std::vector<std::uint32_t> uptime_hours(Clock::time_point now);
  // Replaces GPU `device`'s verdict line.
  void set_verification(std::uint32_t index, std::uint32_t device, const std::string& line);

  bool known(std::uint32_t index) const { return index < records_.size(); }
  bool alive(std::uint32_t index) const { return known(index) && state_.node(index).alive; }
  NodeRecord& operator[](std::uint32_t index) { return records_.at(index); }
  const NodeRecord& operator[](std::uint32_t index) const { return records_.at(index); }
  std::size_t size() const { return records_.size(); }
  // The index a name was last given to (dead or alive), or -1.
  long find(const std::string& name) const;

 private:
  bool name_taken(const std::string& name) const;
  sched::ClusterState& state_;
  std::chrono::milliseconds timeout_;
  std::vector<NodeRecord> records_;
  Clock::time_point last_check_{};
  Heard heard_;
};

}  // namespace iogrid::runtime::head
