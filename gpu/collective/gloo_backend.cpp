#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "gpu/collective/backend.hpp"

namespace iogrid::gpu::collective {

namespace {

// Our Store seen through Gloo's rendezvous interface.
class GlooStore final : public gloo::rendezvous::Store {
 public:
  GlooStore(collective::Store& s, std::chrono::milliseconds timeout) : s_(s), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { s_.set(key, std::string(data.begin(), data.end())); }
  std::vector<char> get(const std::string& key) override {
    s_.wait({key}, timeout_);
    auto v = s_.get(key).value_or(std::string());
    return std::vector<char>(v.begin(), v.end());
  }
  void wait(const std::vector<std::string>& keys) override { s_.wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override { s_.wait(keys, timeout); }

 private:
  collective::Store& s_;
  std::chrono::milliseconds timeout_;
};

template <class T>
void divide(void* data, std::size_t count, int by) {
  auto* p = static_cast<T*>(data);
  for (std::size_t i = 0; i < count; ++i) p[i] = static_cast<T>(p[i] / static_cast<T>(by));
}

template <class T>
gloo::AllreduceOptions::Func reducer(ReduceOp op) {
  if (op == ReduceOp::max) return [](void* c, const void* a, const void* b, size_t n) { gloo::max<T>(c, a, b, n); };
  return [](void* c, const void* a, const void* b, size_t n) { gloo::sum<T>(c, a, b, n); };
}

class GlooBackend final : public Backend {
 public:
  GlooBackend(collective::Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o)
      : rank_(rank), size_(size), prefix_(prefix), timeout_(o.timeout) {
    check_member(prefix, rank, size);
    try {
      gloo::transport::tcp::attr attr;
      attr.hostname = o.host;
      device_ = gloo::transport::tcp::CreateDevice(attr);
      GlooStore gs(store, timeout_);
      gloo::rendezvous::PrefixStore ps(prefix, gs);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
      ctx->setTimeout(timeout_);
      ctx->connectFullMesh(ps, device_);
      ctx_ = ctx;
    } catch (const CollectiveError& e) {
      throw CollectiveError("group " + prefix + " (rank " + std::to_string(rank) + " of " + std::to_string(size) +
                            "): " + e.what());
    } catch (const std::exception& e) {
      throw CollectiveError("group " + prefix + " (rank " + std::to_string(rank) + " of " + std::to_string(size) +
                            "): could not connect to its peers: " + e.what());
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "gloo"; }

  void allreduce(void* data, std::size_t count, DType type, ReduceOp op) override {
    guard("allreduce", [&] {
      if (count == 0) return;
      gloo::AllreduceOptions opts(ctx_);
      opts.setTimeout(timeout_);
      opts.setTag(next_tag());
      switch (type) {
        case DType::f32: set_io<float>(opts, data, count), opts.setReduceFunction(reducer<float>(op)); break;
        case DType::f64: set_io<double>(opts, data, count), opts.setReduceFunction(reducer<double>(op)); break;
        case DType::i32: set_io<std::int32_t>(opts, data, count), opts.setReduceFunction(reducer<std::int32_t>(op)); break;
        case DType::i64: set_io<std::int64_t>(opts, data, count), opts.setReduceFunction(reducer<std::int64_t>(op)); break;
      }
      gloo::allreduce(opts);
      if (op == ReduceOp::mean) {
        switch (type) {
          case DType::f32: divide<float>(data, count, size_); break;
          case DType::f64: divide<double>(data, count, size_); break;
          case DType::i32: divide<std::int32_t>(data, count, size_); break;
          case DType::i64: divide<std::int64_t>(data, count, size_); break;
        }
      }
    });
  }

  void broadcast(void* data, std::size_t count, DType type, int root) override {
    guard("broadcast", [&] {
      if (root < 0 || root >= size_) throw CollectiveError("root " + std::to_string(root) + " is not a member");
      if (count == 0) return;
      gloo::BroadcastOptions opts(ctx_);
      opts.setTimeout(timeout_);
      opts.setTag(next_tag());
      opts.setRoot(root);
      auto* bytes = static_cast<char*>(data);
      const auto n = count * size_of(type);
      if (rank_ == root) opts.setInput(bytes, n);
      opts.setOutput(bytes, n);
      gloo::broadcast(opts);
    });
  }

  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    guard("allgather", [&] {
      if (count == 0) return;
      gloo::AllgatherOptions opts(ctx_);
      opts.setTimeout(timeout_);
      opts.setTag(next_tag());
      const auto n = count * size_of(type);
      opts.setInput(const_cast<char*>(static_cast<const char*>(in)), n);
      opts.setOutput(static_cast<char*>(out), n * static_cast<std::size_t>(size_));
      gloo::allgather(opts);
    });
  }

  // Gloo has no reduce-scatter in its option API: an allreduce of the whole input, keeping this rank's part.
  void reduce_scatter(const void* in, void* out, std::size_t count, DType type, ReduceOp op) override {
    const auto n = count * size_of(type);
    std::vector<char> all(static_cast<const char*>(in), static_cast<const char*>(in) + n * static_cast<std::size_t>(size_));
    allreduce(all.data(), count * static_cast<std::size_t>(size_), type, op);
    std::memcpy(out, all.data() + n * static_cast<std::size_t>(rank_), n);
  }

  void barrier() override {
    guard("barrier", [&] {
      gloo::BarrierOptions opts(ctx_);
      opts.setTimeout(timeout_);
      opts.setTag(next_tag());
      gloo::barrier(opts);
    });
  }

 private:
  template <class T>
  static void set_io(gloo::AllreduceOptions& opts, void* data, std::size_t count) {
    opts.setInput(static_cast<T*>(data), count);
    opts.setOutput(static_cast<T*>(data), count);
  }
  std::uint32_t next_tag() { return tag_++; }
  template <class F>
  void guard(const char* op, F&& f) {
    try {
      f();
    } catch (const CollectiveError& e) {
      throw CollectiveError(std::string(op) + " in group " + prefix_ + ": " + e.what());
    } catch (const std::exception& e) {
      throw CollectiveError(std::string(op) + " in group " + prefix_ + " (rank " + std::to_string(rank_) + " of " +
                            std::to_string(size_) + ") failed: a member died or stopped answering (" + e.what() + ")");
    }
  }

  int rank_, size_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> ctx_;
  std::uint32_t tag_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_gloo(Store& store, const std::string& prefix, int rank, int size, const GroupOptions& o) {
  return std::make_unique<GlooBackend>(store, prefix, rank, size, o);
}

}  // namespace iogrid::gpu::collective
