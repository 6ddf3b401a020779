// Collective groups across actors of the embedded cluster, meeting through the head's key-value store.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "gpu/kernels/ops.hpp"
#include "gpu/memory.hpp"

#include "cluster_fixture.hpp"

using namespace std::chrono_literals;
using iogrid::collective::Group;
using iogrid::collective::ReduceOp;

namespace {
struct Member {
  int rank = 0, size = 0;
  Member(int r, int s) : rank(r), size(s) {}
  // One round: the mean of every member's gradient, the ranks gathered, rank 0's weights broadcast; with
  // `host_backend` "auto" the actors (threads of this process) take the local backend.
  std::vector<double> round(std::string group, std::string host_backend) {
    auto g = Group::join(group, rank, size, {.timeout = 20s, .host_backend = host_backend});
    std::vector<float> grad(1000, float(rank + 1));
    g.allreduce(grad, ReduceOp::mean);
    auto ranks = g.allgather(std::vector<std::int32_t>{rank});
    std::vector<std::int64_t> weights(3, rank == 0 ? 7 : 0);
    g.broadcast(weights, 0);
    g.barrier();
    return {double(grad[0]), double(grad[999]), double(ranks.size()), double(ranks[std::size_t(size - 1)]),
            double(weights[2]), double(g.size()), g.backend() == (host_backend == "gloo" ? "gloo" : "local") ? 1.0 : 0.0};
  }
  // Host tensors through the same group: allreduce (max), reduce-scatter, allgather; an f16 tensor is refused.
  std::vector<double> tensors(std::string group) {
    auto g = Group::join(group, rank, size, {.timeout = 20s});
    auto t = iogrid::Tensor::from(std::vector<float>(8, float(rank)), {2, 4});
    g.allreduce(t, ReduceOp::max);
    auto all = iogrid::Tensor::from(std::vector<std::int32_t>(std::size_t(size) * 2, rank + 1), {size * 2});
    auto part = g.reduce_scatter(all);
    auto gathered = g.allgather(iogrid::Tensor::from(std::vector<std::int64_t>{rank * 10}, {1}));
    double refused = 0;
    try {
      iogrid::Tensor half({4}, iogrid::DType::f16);
      g.allreduce(half);
    } catch (const iogrid::CollectiveError& e) {
      refused = std::string(e.what()).find("f32, i32 or i64") != std::string::npos ? 1 : 0;
    }
    return {double(t.data<float>()[7]), double(t.dim(1)), double(part.numel()), double(part.data<std::int32_t>()[1]),
            double(gathered.numel()), double(gathered.data<std::int64_t>()[std::size_t(size - 1)]), refused,
            g.backend() == "local" ? 1.0 : 0.0};
  }
  int lonely(std::string group) {
    try {
      Group::join(group, rank, size + 1, {.timeout = 300ms});
      return 0;
    } catch (const iogrid::CollectiveError& e) {
      return std::string(e.what()).find("timed out") != std::string::npos ? 1 : 2;
    }
  }
};
IOGRID_REMOTE(&Member::round);
IOGRID_REMOTE(&Member::lonely);
IOGRID_REMOTE(&Member::tensors);
}  // namespace

TEST_CASE("actors form a collective group through the head's key-value store", "[collective][sdk]") {
  Cluster c;
  const int n = 4;
  std::vector<iogrid::ActorHandle<Member>> members;
  for (int r = 0; r < n; ++r) members.push_back(iogrid::actor<Member>(r, n).remote());
  for (std::string backend : {"auto", "gloo"}) {
    INFO("host backend " << backend);
    std::vector<iogrid::ObjectRef<std::vector<double>>> rounds;
    for (auto& m : members) rounds.push_back(m.call(&Member::round).remote("sdk-group-" + backend, backend));
    for (auto& r : rounds) {
      auto v = iogrid::get(r, 60s);
      CHECK(v[0] == Approx(2.5));  // mean of 1..4
      CHECK(v[1] == Approx(2.5));
      CHECK(v[2] == 4);
      CHECK(v[3] == 3);
      CHECK(v[4] == 7);
      CHECK(v[5] == 4);
      CHECK(v[6] == 1);  // the backend asked for
    }
  }
  // Tensors: sum of 1..4 = 10 in every reduce-scattered element; max of ranks = 3; rank r's 10r gathered.
  std::vector<iogrid::ObjectRef<std::vector<double>>> tensor_rounds;
  for (auto& m : members) tensor_rounds.push_back(m.call(&Member::tensors).remote(std::string("sdk-group-tensors")));
  for (auto& r : tensor_rounds) {
    auto v = iogrid::get(r, 60s);
    CHECK(v[0] == 3);
    CHECK(v[1] == 4);  // the tensor kept its shape
    CHECK(v[2] == 2);
    CHECK(v[3] == 10);
    CHECK(v[4] == 4);
    CHECK(v[5] == 30);
    CHECK(v[6] == 1);
    CHECK(v[7] == 1);
  }
  CHECK(iogrid::current_host() == "127.0.0.1");  // where members listen by default in an embedded cluster
  // A member whose peers never come: a CollectiveError naming the timeout, not a hang.
  CHECK(iogrid::get(members[0].call(&Member::lonely).remote(std::string("sdk-group-alone")), 30s) == 1);
}

TEST_CASE("GPU tensors go through NCCL in the same group, host tensors through the host backend", "[collective][sdk][gpu]") {
  std::string why;
  const int gpus = iogrid::gpu::cuda_device_count(&why);
  if (gpus == 0 || !iogrid::gpu::kernels::cuda_ops(0, &why)) {
    WARN("skipped: no CUDA device here (" + why + "); host tensors are tested above");
    return;
  }
  Cluster c;
  const int n = std::min(gpus, 4);
  std::vector<std::thread> threads;
  std::vector<float> sums(std::size_t(n), -1);
  std::vector<std::string> backends(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      auto g = Group::join("sdk-group-nccl", r, n, {.timeout = 30s});
      auto t = iogrid::Tensor::from(std::vector<float>(1 << 20, float(r + 1)), {1 << 20}).to(iogrid::Device::cuda(r));
      g.allreduce(t);
      sums[std::size_t(r)] = t.to(iogrid::Device::cpu()).data<float>()[12345];
      backends[std::size_t(r)] = g.backend();
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    CHECK(sums[std::size_t(r)] == Approx(n * (n + 1) / 2.0));
    CHECK(backends[std::size_t(r)] == "local+nccl");
  }
}

TEST_CASE("in a ring group (members that cannot all dial each other) GPU tensors go round through host memory", "[collective][sdk][gpu]") {
  std::string why;
  if (iogrid::gpu::cuda_device_count(&why) == 0 || !iogrid::gpu::kernels::cuda_ops(0, &why)) {
    WARN("skipped: no CUDA device here (" + why + "); the ring's host path is tested in test_gpu [collective]");
    return;
  }
  Cluster c;
  const int n = 3;  // on one GPU is enough: NCCL is not used
  std::vector<std::thread> threads;
  std::vector<std::vector<float>> got(static_cast<std::size_t>(n));
  std::vector<std::string> backends(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      auto g = Group::join("sdk-group-staged", r, n, {.timeout = 30s, .host_backend = "ring"});
      const auto gpu = iogrid::Device::cuda(0);
      auto t = iogrid::Tensor::from(std::vector<float>(1 << 18, float(r + 1)), {1 << 18}).to(gpu);
      g.allreduce(t);
      auto w = iogrid::Tensor::from(std::vector<float>(4, float(r * 10)), {4}).to(gpu);
      g.broadcast(w, 2);
      auto all = g.allgather(iogrid::Tensor::from(std::vector<float>{float(r)}, {1}).to(gpu));
      auto& out = got[std::size_t(r)];
      out = {t.to(iogrid::Device::cpu()).data<float>()[777], w.to(iogrid::Device::cpu()).data<float>()[3],
             all.device().is_cpu() ? -1.0f : all.to(iogrid::Device::cpu()).data<float>()[2]};
      backends[std::size_t(r)] = g.backend();
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    CHECK(got[std::size_t(r)] == std::vector<float>{6.0f, 20.0f, 2.0f});  // 1+2+3; rank 2's 20; rank 2's own
    CHECK(backends[std::size_t(r)] == "ring+host-staged");
  }
}
