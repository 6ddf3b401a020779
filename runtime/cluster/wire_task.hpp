// Moving task specs and their outcomes across processes: a TaskSpec becomes a proto::TaskSpec with the values
// of its ObjectRef arguments inline (the owner resolves them first), and comes back to life in the worker
// process as a TaskSpec whose dependencies are ready local entries.
#pragma once

#include <cstdint>
#include <memory>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common.capnp.h"
#include "iogrid/core/task_spec.hpp"
#include "wire.capnp.h"
#include "runtime/lineage.hpp"
#include "worker/work_source.hpp"

namespace iogrid::runtime::cluster {

class RemoteObject;

struct Location {
  std::string host;
  std::uint16_t port = 0;
  std::uint64_t key = 0;
  std::uint64_t size = 0;
  std::uint32_t node = 0;
  std::string relay;  // the holder's name at the head's relay, for when host:port cannot be dialled ("" none)
};

// A spec received by a worker process, with the owner's id for it.
struct RemoteSpec : core::TaskSpec {
  std::uint64_t task_id = 0;
  std::string missing_function;   // set when this executable has no function of that name
  std::vector<std::pair<std::size_t, Location>> remote_deps;  // deps still to pull over the data plane
  std::optional<Location> lost_dep;                           // the dep that could not be pulled
};

// Where a large object lives: its owner's answer for a dependency that does not travel inline.
using Locate = std::function<std::optional<Location>(const core::ObjectEntry&)>;

void write_task(proto::TaskSpec::Builder b, const core::TaskSpec& spec, std::uint64_t task_id, const Locate& locate);
std::unique_ptr<RemoteSpec> read_task(proto::TaskSpec::Reader r);
// Pulls the spec's remote dependencies into ready local entries; throws iogrid::Error when one cannot be had,
// setting `*failed` to its location.
void fetch_remote_deps(RemoteSpec& spec, Location* failed);

void write_location(proto::ObjectLocation::Builder b, const Location& l);
Location read_location(proto::ObjectLocation::Reader r);

std::shared_ptr<RemoteObject> make_remote_object(Location l, bool borrowed = false);  // registered for node-death lookups

// ObjectRefs inside values crossing processes. The sender describes each (waiting for it first if it must);
// the receiver makes a local entry under the same id (ids are unique across processes in cluster mode) and
// lists it in its process's export table, so deserialising the value finds it; the returned tokens keep
// those entries alive.
// `owned`: ownership moves with the value (results); otherwise the receiver borrows (arguments).
void write_refs(capnp::List<proto::RefInfo>::Builder list, const std::vector<core::ObjectEntry*>& refs,
                const Locate& locate, bool owned);
std::vector<std::shared_ptr<void>> read_refs(capnp::List<proto::RefInfo>::Reader list);
// The refs inside `spec`'s inline arguments and inside its dependencies' values (recursively).
std::vector<core::ObjectEntry*> refs_of(const core::TaskSpec& spec);

// `location`: set when the value stays on the node (large results).
void write_result(proto::TaskResult::Builder b, std::uint64_t task_id, const worker::Outcome& out,
                  const Location* location = nullptr, const Location* lost_dep = nullptr);
worker::Outcome read_result(proto::TaskResult::Reader r);

// The owner's handle on a large object that lives in another process's store: pulled (once, then cached)
// over the data plane, freed there when the owner's last reference goes. When its node dies the object is
// rebuilt from its lineage (the task that made it runs again); without lineage it fails as lost.
class RemoteObject final : public core::ObjectSource, public LineageAware, public std::enable_shared_from_this<RemoteObject> {
 public:
  // `borrowed`: another process owns it; dropping this handle does not free it.
  explicit RemoteObject(Location l, bool borrowed = false);
  ~RemoteObject() override;
  core::BufferPtr fetch(std::uint64_t id) override;  // waits for a rebuild in progress
  void erase(std::uint64_t id) override;
  const std::string& node_name() const override { return name_; }
  void set_lineage(Recompute r) override;
  // Ownership moves to another process (a result's ref): this handle no longer frees the object.
  void disown();

  Location location() const;
  // The node holding it is gone: rebuild (or fail).
  void mark_lost(const std::string& why);
  bool rebuilding() const;
  // Runs `fn` once the object is available again (now if it is), or has failed for good.
  void when_available(std::function<void()> fn);

  // Every live remote object on `node` (for a node's death), or at `l` (for a worker that could not pull it).
  static std::vector<std::shared_ptr<RemoteObject>> on_node(std::uint32_t node);
  static std::shared_ptr<RemoteObject> find(const Location& l);

 private:
  void adopt(const std::shared_ptr<RemoteObject>& fresh);
  void finish_rebuild(core::RefHandle result);
  Location loc_;
  std::string name_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  core::BufferPtr cached_;
  bool erased_ = false;
  bool rebuilding_ = false;
  std::string failed_;
  Recompute lineage_;
  std::vector<std::function<void()>> waiting_;
};

}  // namespace iogrid::runtime::cluster
