// Backend: one collective interface with interchangeable implementations (as PyTorch's c10d ProcessGroup):
// for tensors in host memory Gloo over TCP (any members) or the local backend (members that are threads of
// one process: they read each other's buffers); NCCL for tensors on GPUs (the GPU layer). A backend is made by
// rendezvous of `size` members through a Store, each knowing its rank; every member must call the same
// operations in the same order.
// Rules: buffers are contiguous arrays of one element type; allreduce/broadcast work in place; allgather's
// output holds size x count elements (rank r's at offset r x count); reduce_scatter leaves in `out` this
// rank's `count` elements of the reduction of every member's size x count input. A member that dies or stops
// calling makes the others' pending operation fail with CollectiveError within the group's timeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "gpu/collective/store.hpp"

namespace iogrid::gpu::collective {

enum class ReduceOp { sum, mean, max };
enum class DType { f32, f64, i32, i64 };
inline std::size_t size_of(DType t) { return t == DType::f32 || t == DType::i32 ? 4 : 8; }
inline const char* to_string(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "?";
}
inline const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::max: return "max";
  }
  return "?";
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;

  virtual void allreduce(void* data, std::size_t count, DType type, ReduceOp op) = 0;
  virtual void broadcast(void* data, std::size_t count, DType type, int root) = 0;
  virtual void allgather(const void* in, void* out, std::size_t count, DType type) = 0;
  virtual void reduce_scatter(const void* in, void* out, std::size_t count, DType type, ReduceOp op) = 0;
  virtual void barrier() = 0;
  // How each member's link to the next one was made, for backends that say ("0>1 direct, 1>0 punched").
  virtual std::string links() const { return ""; }
};

struct GroupOptions {
  std::chrono::milliseconds timeout{30000};  // rendezvous and each operation
  std::string host = "127.0.0.1";            // the address this member listens on for its peers (Gloo)
  // make_host's choice: "auto" (local when every member is in this process, else Gloo when every member can
  // dial every other, else the ring), "local", "gloo" or "ring" (members that cannot all dial each other).
  std::string host_backend = "auto";
  // The ring's way around a link it cannot dial: both ends call it with the same rendezvous name and the same
  // place, and get a connected socket (a relay, hole-punched where the NATs allow), `*path` saying which
  // ("relayed", "punched"); -1 when it fails. Unset: links are dialled directly only.
  std::function<int(const std::string& rendezvous, const std::string& place, std::string* path)> meet;
  // Where this member would meet (its relay, "host:port"; members may use different relays): the end whose
  // dial failed publishes its place and the other end meets it there. Unset: "" (meet's own default).
  std::function<std::string()> meet_place;
};

// `prefix` names the group in the store (members of one group use the same prefix); ranks 0..size-1.
// Every make_* refuses a rank outside the group through this check, before any rendezvous.
inline void check_member(const std::string& prefix, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    throw CollectiveError("group " + prefix + ": rank " + std::to_string(rank) + " is outside 0.." + std::to_string(size - 1));
}
// Gloo over TCP: members anywhere, every one able to dial every other.
std::unique_ptr<Backend> make_gloo(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o);
// A ring over TCP (ring_backend.cpp): two links per member, each dialled directly or met through `o.meet`:
// members behind NATs and firewalls.
std::unique_ptr<Backend> make_ring(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o);
// Can every member dial every other? Each listens on a port of its own, publishes `o.host` and that port, dials
// every other member's (all at once, 1.5 s each) and publishes its verdict; every member reads all verdicts, so
// all get the same answer. A rendezvous of its own: every member must call it.
bool members_dial_each_other(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o);
// Members that are all threads of this process (local_backend.cpp); a member in another process is refused.
std::unique_ptr<Backend> make_local(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o);
// For host memory, as GroupOptions::host_backend says (host_backend.cpp): with "auto" the members first
// publish which process they are in, then all take the local backend when they share one, Gloo otherwise.
std::unique_ptr<Backend> make_host(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o);
// This process, as a string no other process has (its id and a random number drawn at first use).
std::string process_token();

}  // namespace iogrid::gpu::collective
