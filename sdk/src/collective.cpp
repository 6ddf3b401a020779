#include "iogrid/collective.hpp"

#include "gpu/collective/backend.hpp"
#include "iogrid/runtime.hpp"

namespace iogrid::collective {

namespace {

namespace gc = iogrid::gpu::collective;

// The head's key-value store as a rendezvous store (keys under "collective/").
class KvStore final : public gc::Store {
 public:
  void set(const std::string& key, const std::string& value) override { iogrid::kv_put("collective/" + key, value); }
  std::optional<std::string> get(const std::string& key) override { return iogrid::kv_get("collective/" + key); }
};

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
  std::unique_ptr<gc::Backend> backend;
};

Group Group::join(const std::string& name, int rank, int size, GroupOptions options) {
  if (name.empty()) throw CollectiveError("iogrid: a collective group needs a name");
  Group g;
  g.impl_ = std::make_shared<Impl>();
  gc::GroupOptions o;
  o.timeout = options.timeout;
  o.host = options.host;
  g.impl_->backend = translate([&] { return gc::make_gloo(g.impl_->store, name, rank, size, o); });
  return g;
}

int Group::rank() const { return impl_->backend->rank(); }
int Group::size() const { return impl_->backend->size(); }
std::string Group::backend() const { return impl_->backend->name(); }

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
