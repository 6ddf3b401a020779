#include "iogrid/collective.hpp"

#include <spdlog/spdlog.h>

#include "gpu/collective/backend.hpp"
#include "gpu/collective/nccl_backend.hpp"
#include "gpu/memory.hpp"
#include "iogrid/runtime.hpp"
#include "runtime/transport/auth.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/punch.hpp"

namespace iogrid::collective {

namespace {

namespace gc = iogrid::gpu::collective;

// The head's key-value store as a rendezvous store (keys under "collective/").
class KvStore final : public gc::Store {
 public:
  void set(const std::string& key, const std::string& value) override { iogrid::kv_put("collective/" + key, value); }
  std::optional<std::string> get(const std::string& key) override { return iogrid::kv_get("collective/" + key); }
};

// Where this process meets a ring peer: its relay (the head's or an operator's), "host:port"; "" when none.
std::string relay_place() {
  namespace tr = iogrid::runtime::transport;
  auto client = tr::process_data_client();
  if (!client) return "";
  const auto [host, port] = client->relay();
  return port ? host + ":" + std::to_string(port) : "";
}

// The ring's way around a link it cannot dial: both ends meet at the relay the dialling end named (`place`;
// hole-punched where the NATs allow), under a name derived from the rendezvous (the relay takes words only).
// -1: no relay known.
int meet_at_relay(const std::string& rendezvous, const std::string& place, std::string* path) {
  namespace tr = iogrid::runtime::transport;
  auto client = tr::process_data_client();
  if (!client) return -1;
  auto [host, port] = client->relay();
  if (const auto colon = place.rfind(':'); colon != std::string::npos && colon > 0) {
    host = place.substr(0, colon);
    port = static_cast<std::uint16_t>(std::atoi(place.c_str() + colon + 1));
  }
  if (!port) return -1;
  auto link = tr::relay_meet(host, port, "ring-" + tr::sha256_hex(rendezvous).substr(0, 32), client->token(), std::chrono::seconds(5));
  if (link.fd < 0) {
    spdlog::warn("collective: cannot meet a peer at the relay {}:{}: {}", host, port, link.error);
    return -1;
  }
  if (path) *path = link.punched ? "punched" : "relayed";
  return link.fd;
}

gc::DType dtype(int t) {
  switch (t) {
    case 0: return gc::DType::f32;
    case 1: return gc::DType::f64;
    case 2: return gc::DType::i32;
    default: return gc::DType::i64;
  }
}

gc::ReduceOp op_of(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return gc::ReduceOp::sum;
    case ReduceOp::mean: return gc::ReduceOp::mean;
    case ReduceOp::max: return gc::ReduceOp::max;
  }
  return gc::ReduceOp::sum;
}

template <class F>
auto translate(F&& f) {
  try {
    return f();
  } catch (const gc::CollectiveError& e) {
    throw CollectiveError(std::string("iogrid: ") + e.what());
  }
}

}  // namespace

struct Group::Impl {
  KvStore store;
  std::string name;
  gc::GroupOptions options;
  std::unique_ptr<gc::Backend> backend;  // host memory: local or Gloo
  std::unique_ptr<gc::Backend> nccl;     // formed on the first GPU tensor
  int nccl_device = -1;

  // Members that cannot all dial each other (the ring: NATs, firewalls) cannot form NCCL either (its bootstrap
  // and its socket transport dial every peer): their GPU tensors are copied to host memory, go round the ring,
  // and are copied back. (`backend()` says "ring+host-staged" once that happened.)
  bool staged(const Tensor& t) {
    if (t.device().is_cpu() || std::string(backend->name()) != "ring") return false;
    if (!staging_said) {
      staging_said = true;
      spdlog::info("collective group {}: members cannot all dial each other, so GPU tensors go through host memory "
                   "over the ring (NCCL needs direct links)", name);
    }
    return true;
  }
  bool staging_said = false;

  // The backend for a tensor: the host backend for host memory (and for staged GPU tensors), NCCL on the
  // tensor's GPU.
  gc::Backend& for_tensor(const Tensor& t, const char* what) {
    if (!t.defined()) throw CollectiveError(std::string("iogrid: ") + what + " of an empty tensor");
    if (t.device().is_cpu() || staged(t)) return *backend;
    if (!nccl) {
      nccl_device = t.device().index;
      nccl = translate([&] { return gc::make_nccl(store, name + "/nccl", backend->rank(), backend->size(), nccl_device, options); });
    } else if (t.device().index != nccl_device) {
      throw CollectiveError("iogrid: group " + name + " talks NCCL on cuda:" + std::to_string(nccl_device) + ", got a tensor on " + t.device().str());
    }
    return *nccl;
  }
};

namespace {
gc::DType tensor_dtype(const Tensor& t, const char* what) {
  switch (t.dtype()) {
    case DType::f32: return gc::DType::f32;
    case DType::i32: return gc::DType::i32;
    case DType::i64: return gc::DType::i64;
    default:
      throw CollectiveError(std::string("iogrid: ") + what + " takes f32, i32 or i64 tensors, got " + to_string(t.dtype()));
  }
}
}  // namespace

Group Group::join(const std::string& name, int rank, int size, GroupOptions options) {
  if (name.empty()) throw CollectiveError("iogrid: a collective group needs a name");
  Group g;
  g.impl_ = std::make_shared<Impl>();
  g.impl_->name = name;
  g.impl_->options.timeout = options.timeout;
  g.impl_->options.host = options.host.empty() ? current_host() : options.host;
  g.impl_->options.host_backend = options.host_backend;
  g.impl_->options.meet = meet_at_relay;
  g.impl_->options.meet_place = relay_place;
  g.impl_->backend = translate([&] { return gc::make_host(g.impl_->store, name, rank, size, g.impl_->options); });
  if (const auto links = g.impl_->backend->links(); !links.empty())
    spdlog::info("collective group {} (rank {} of {}): links {}", name, rank, size, links);
  return g;
}

std::string Group::links() const { return impl_->backend->links(); }

int Group::rank() const { return impl_->backend->rank(); }
int Group::size() const { return impl_->backend->size(); }
std::string Group::backend() const {
  return std::string(impl_->backend->name()) + (impl_->nccl ? "+nccl" : "") + (impl_->staging_said ? "+host-staged" : "");
}

namespace {
// A staged GPU tensor's values back in its own storage (in place, as the unstaged operation leaves them).
void copy_back(Tensor& t, const Tensor& host) {
  try {
    gpu::copy_to_device(t.device().index, t.raw(), host.raw(), t.nbytes());
  } catch (const std::exception& e) {
    throw CollectiveError(std::string("iogrid: ") + e.what());
  }
}
}  // namespace

void Group::allreduce(Tensor& t, ReduceOp op) {
  auto& b = impl_->for_tensor(t, "allreduce");
  if (impl_->staged(t)) {
    auto h = t.to(Device::cpu());
    translate([&] { b.allreduce(h.raw(), h.numel(), tensor_dtype(h, "allreduce"), op_of(op)); });
    return copy_back(t, h);
  }
  translate([&] { b.allreduce(t.raw(), t.numel(), tensor_dtype(t, "allreduce"), op_of(op)); });
}
void Group::broadcast(Tensor& t, int root) {
  auto& b = impl_->for_tensor(t, "broadcast");
  if (impl_->staged(t)) {
    auto h = t.to(Device::cpu());
    translate([&] { b.broadcast(h.raw(), h.numel(), tensor_dtype(h, "broadcast"), root); });
    return copy_back(t, h);
  }
  translate([&] { b.broadcast(t.raw(), t.numel(), tensor_dtype(t, "broadcast"), root); });
}
Tensor Group::allgather(const Tensor& mine) {
  auto& b = impl_->for_tensor(mine, "allgather");
  if (impl_->staged(mine)) {
    const auto h = mine.to(Device::cpu());
    Tensor out({static_cast<std::int64_t>(h.numel()) * size()}, h.dtype(), Device::cpu());
    translate([&] { b.allgather(h.raw(), out.raw(), h.numel(), tensor_dtype(h, "allgather")); });
    return out.to(mine.device());
  }
  Tensor out({static_cast<std::int64_t>(mine.numel()) * size()}, mine.dtype(), mine.device());
  translate([&] { b.allgather(mine.raw(), out.raw(), mine.numel(), tensor_dtype(mine, "allgather")); });
  return out;
}
Tensor Group::reduce_scatter(const Tensor& all, ReduceOp op) {
  auto& b = impl_->for_tensor(all, "reduce_scatter");
  const auto n = all.numel() / static_cast<std::size_t>(size());
  if (n * static_cast<std::size_t>(size()) != all.numel())
    throw CollectiveError("iogrid: reduce_scatter needs a multiple of the group size (" + std::to_string(size()) +
                          ") elements, got " + std::to_string(all.numel()));
  if (impl_->staged(all)) {
    const auto h = all.to(Device::cpu());
    Tensor out({static_cast<std::int64_t>(n)}, h.dtype(), Device::cpu());
    translate([&] { b.reduce_scatter(h.raw(), out.raw(), n, tensor_dtype(h, "reduce_scatter"), op_of(op)); });
    return out.to(all.device());
  }
  Tensor out({static_cast<std::int64_t>(n)}, all.dtype(), all.device());
  translate([&] { b.reduce_scatter(all.raw(), out.raw(), n, tensor_dtype(all, "reduce_scatter"), op_of(op)); });
  return out;
}

void Group::raw_allreduce(void* data, std::size_t n, int type, ReduceOp op) {
  translate([&] { impl_->backend->allreduce(data, n, dtype(type), op_of(op)); });
}
void Group::raw_broadcast(void* data, std::size_t n, int type, int root) {
  translate([&] { impl_->backend->broadcast(data, n, dtype(type), root); });
}
void Group::raw_allgather(const void* in, void* out, std::size_t n, int type) {
  translate([&] { impl_->backend->allgather(in, out, n, dtype(type)); });
}
void Group::raw_reduce_scatter(const void* in, void* out, std::size_t n, int type, ReduceOp op) {
  translate([&] { impl_->backend->reduce_scatter(in, out, n, dtype(type), op_of(op)); });
}
void Group::barrier() {
  translate([&] { impl_->backend->barrier(); });
}

}  // namespace iogrid::collective
