#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "gpu/collective/backend.hpp"

namespace iogrid::gpu::collective {

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::mean: return ncclAvg;
    case ReduceOp::max: return ncclMax;
  }
  return ncclSum;
}

std::string hex(const void* p, std::size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    auto b = static_cast<const unsigned char*>(p)[i];
    s += d[b >> 4];
    s += d[b & 15];
  }
  return s;
}

void unhex(const std::string& s, void* out, std::size_t n) {
  if (s.size() != 2 * n) throw CollectiveError("a malformed NCCL id in the store");
  auto v = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i < n; ++i) static_cast<unsigned char*>(out)[i] = static_cast<unsigned char>(v(s[2 * i]) * 16 + v(s[2 * i + 1]));
}

class NcclBackend final : public Backend {
 public:
  NcclBackend(Store& store, const std::string& prefix, int rank, int size, int device, const GroupOptions& o)
      : rank_(rank), size_(size), device_(device), prefix_(prefix), timeout_(o.timeout) {
    check_member(prefix, rank, size);
    cuda(cudaSetDevice(device_), "select the device");
    ncclUniqueId id;
    const std::string key = prefix + "/nccl-id";
    if (rank == 0) {
      nccl(ncclGetUniqueId(&id), "create the group id");
      store.set(key, hex(&id, sizeof id));
    } else {
      store.wait({key}, timeout_);
      unhex(store.get(key).value_or(""), &id, sizeof id);
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    nccl(ncclCommInitRankConfig(&comm_, size, id, rank, &config), "join");
    wait_ready("join");
    cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "create a stream");
  }
  ~NcclBackend() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "nccl"; }

  void allreduce(void* data, std::size_t count, DType type, ReduceOp op) override {
    run("allreduce", [&] { return ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), comm_, stream_); });
  }
  void broadcast(void* data, std::size_t count, DType type, int root) override {
    if (root < 0 || root >= size_) throw CollectiveError("broadcast in group " + prefix_ + ": root " + std::to_string(root) + " is not a member");
    run("broadcast", [&] { return ncclBroadcast(data, data, count, nccl_type(type), root, comm_, stream_); });
  }
  void allgather(const void* in, void* out, std::size_t count, DType type) override {
    run("allgather", [&] { return ncclAllGather(in, out, count, nccl_type(type), comm_, stream_); });
  }
  void reduce_scatter(const void* in, void* out, std::size_t count, DType type, ReduceOp op) override {
    run("reduce_scatter", [&] { return ncclReduceScatter(in, out, count, nccl_type(type), nccl_op(op), comm_, stream_); });
  }
  void barrier() override {
    if (!barrier_buf_) cuda(cudaMalloc(&barrier_buf_, sizeof(float)), "allocate the barrier word");
    allreduce(barrier_buf_, 1, DType::f32, ReduceOp::sum);
  }

 private:
  void cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
      throw CollectiveError("group " + prefix_ + " (rank " + std::to_string(rank_) + "): cannot " + what + ": " + cudaGetErrorString(e));
  }
  void nccl(ncclResult_t r, const char* what) {
    if (r != ncclSuccess && r != ncclInProgress)
      throw CollectiveError("group " + prefix_ + " (rank " + std::to_string(rank_) + "): cannot " + what + ": " + ncclGetErrorString(r));
  }
  // Polls the communicator until its pending work is accepted, within the timeout.
  void wait_ready(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what, ncclGetErrorString(state));
      if (std::chrono::steady_clock::now() > deadline) fail(what, "timed out");
      std::this_thread::yield();
    }
  }
  template <class F>
  void run(const char* what, F&& f) {
    cuda(cudaSetDevice(device_), "select the device");
    // The communicator's stream does not order itself after kernels on the default stream (which may still be
    // writing the buffers, e.g. a backward pass): wait for them.
    cuda(cudaStreamSynchronize(cudaStreamLegacy), "wait for the device's pending work");
    nccl(f(), what);
    wait_ready(what);
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {  // the stream finishes, or NCCL reports an error, or the timeout passes
      auto e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) fail(what, cudaGetErrorString(e));
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) fail(what, ncclGetErrorString(state));
      if (std::chrono::steady_clock::now() > deadline) fail(what, "a member died or stopped answering (timed out)");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  [[noreturn]] void fail(const char* what, const std::string& why) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
    throw CollectiveError(std::string(what) + " in group " + prefix_ + " (rank " + std::to_string(rank_) + " of " +
                          std::to_string(size_) + ") failed: " + why);
  }

  int rank_, size_, device_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* barrier_buf_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_nccl_impl(Store& store, const std::string& prefix, int rank, int size, int device,
                                        const GroupOptions& o) {
  return std::make_unique<NcclBackend>(store, prefix, rank, size, device, o);
}

}  // namespace iogrid::gpu::collective
