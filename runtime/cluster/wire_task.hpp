// Moving task specs and their outcomes across processes: a TaskSpec becomes a proto::TaskSpec with the values
// of its ObjectRef arguments inline (the owner resolves them first), and comes back to life in the worker
// process as a TaskSpec whose dependencies are ready local entries.
#pragma once

#include <cstdint>
#include <memory>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common.capnp.h"
#include "iogrid/detail/task_spec.hpp"
#include "wire.capnp.h"
#include "worker/work_source.hpp"

namespace iogrid::runtime::cluster {

struct Location {
  std::string host;
  std::uint16_t port = 0;
  std::uint64_t key = 0;
  std::uint64_t size = 0;
  std::uint32_t node = 0;
};

// A spec received by a worker process, with the owner's id for it.
struct RemoteSpec : detail::TaskSpec {
  std::uint64_t task_id = 0;
  std::string missing_function;   // set when this executable has no function of that name
  std::vector<std::pair<std::size_t, Location>> remote_deps;  // deps still to pull over the data plane
};

// Where a large object lives: its owner's answer for a dependency that does not travel inline.
using Locate = std::function<std::optional<Location>(const detail::ObjectEntry&)>;

void write_task(proto::TaskSpec::Builder b, const detail::TaskSpec& spec, std::uint64_t task_id, const Locate& locate);
std::unique_ptr<RemoteSpec> read_task(proto::TaskSpec::Reader r);
// Pulls the spec's remote dependencies into ready local entries; throws iogrid::Error when one cannot be had.
void fetch_remote_deps(RemoteSpec& spec);

void write_location(proto::ObjectLocation::Builder b, const Location& l);
Location read_location(proto::ObjectLocation::Reader r);

// `location`: set when the value stays on the node (large results).
void write_result(proto::TaskResult::Builder b, std::uint64_t task_id, const worker::Outcome& out,
                  const Location* location = nullptr);
worker::Outcome read_result(proto::TaskResult::Reader r);

// The owner's handle on a large object that lives in another process's store: pulled (once, then cached)
// over the data plane, freed there when the owner's last reference goes.
class RemoteObject final : public detail::ObjectSource {
 public:
  explicit RemoteObject(Location l) : loc_(std::move(l)), name_("node " + std::to_string(loc_.node)) {}
  ~RemoteObject() override;
  detail::BufferPtr fetch(std::uint64_t id) override;
  void erase(std::uint64_t id) override;
  const std::string& node_name() const override { return name_; }
  const Location& location() const { return loc_; }

 private:
  Location loc_;
  std::string name_;
  std::mutex m_;
  detail::BufferPtr cached_;
  bool erased_ = false;
};

}  // namespace iogrid::runtime::cluster
