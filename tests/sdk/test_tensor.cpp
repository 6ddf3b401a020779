// Tensors in host memory (and on a GPU when this machine has one): storage, access rules, tasks, the store.
#include <catch2/catch.hpp>
#include <cmath>
#include <thread>

#include "cluster_fixture.hpp"
#include "gpu/memory.hpp"

namespace {
iogrid::Tensor scaled(iogrid::Tensor t, float k) {
  auto out = t.clone();
  float* p = out.data<float>();
  for (std::size_t i = 0; i < out.numel(); ++i) p[i] *= k;
  return out;
}
IOGRID_REMOTE(scaled);
}  // namespace

TEST_CASE("a host tensor: zero-filled storage, shape, access by element type", "[tensor]") {
  iogrid::Tensor t({3, 4}, iogrid::DType::f32);
  CHECK(t.numel() == 12);
  CHECK(t.nbytes() == 48);
  CHECK(t.describe() == "f32[3, 4] on cpu");
  for (float x : t.to_vector<float>()) CHECK(x == 0.0f);
  t.data<float>()[5] = 2.5f;
  auto view = t.reshape({12});
  CHECK(view.data<float>()[5] == 2.5f);  // same storage
  auto copy = t.clone();
  copy.data<float>()[5] = -1;
  CHECK(t.data<float>()[5] == 2.5f);     // its own storage
  CHECK_THROWS_WITH(t.data<std::int32_t>(), Catch::Contains("f32[3, 4] on cpu read as i32"));
  CHECK_THROWS_WITH(t.reshape({5}), Catch::Contains("cannot reshape"));
  CHECK_THROWS_WITH(iogrid::Tensor({-1}, iogrid::DType::u8), Catch::Contains("negative"));
  CHECK_THROWS_WITH(iogrid::Tensor::from(std::vector<float>{1, 2, 3}, {2, 2}), Catch::Contains("3 values"));
  iogrid::Tensor half({2}, iogrid::DType::bf16);
  CHECK(half.data<std::uint16_t>() != nullptr);  // half-precision bits
  CHECK(half.nbytes() == 4);
}

TEST_CASE("tensors are task arguments and results, and live in the object store", "[tensor]") {
  Cluster c;
  auto t = iogrid::Tensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  auto r = iogrid::get(iogrid::task(scaled).remote(t, 2.0f));
  CHECK(r.shape() == std::vector<std::int64_t>{2, 3});
  CHECK(r.to_vector<float>() == std::vector<float>{2, 4, 6, 8, 10, 12});
  iogrid::Tensor big({1024, 1024}, iogrid::DType::f32);  // 4 MiB: stored, not inline
  big.data<float>()[1048575] = 7;
  auto ref = iogrid::put(big);
  auto back = iogrid::get(ref);
  CHECK(back.data<float>()[1048575] == 7);
  CHECK(iogrid::get(iogrid::task(scaled).remote(ref, 3.0f)).data<float>()[1048575] == 21);
  CHECK_FALSE(iogrid::get(iogrid::put(iogrid::Tensor())).defined());
}

TEST_CASE("a malformed serialised tensor is refused before anything is allocated", "[tensor]") {
  std::vector<std::uint8_t> bytes(6 + 16, 0);
  bytes[0] = 1;  // defined
  bytes[1] = 0;  // f32
  bytes[2] = 2;  // two dimensions
  const std::int64_t huge = std::int64_t(1) << 40;
  std::memcpy(bytes.data() + 6, &huge, 8);
  std::memcpy(bytes.data() + 14, &huge, 8);
  iogrid::Reader r(bytes.data(), bytes.size());
  CHECK_THROWS_AS(iogrid::Codec<iogrid::Tensor>::read(r), iogrid::SerializationError);
}

TEST_CASE("tensors on a GPU: copies there and back keep the values", "[tensor][gpu]") {
  if (iogrid::gpu::cuda_device_count() == 0) {
    WARN("skipped: no CUDA device here (" << (iogrid::gpu::cuda_built() ? "built with CUDA" : "built without CUDA")
                                          << "); the CPU side is what runs");
    CHECK_THROWS_WITH(iogrid::Tensor({4}, iogrid::DType::f32, iogrid::Device::cuda(0)), Catch::Contains("no device cuda:0"));
    return;
  }
  auto host = iogrid::Tensor::from(std::vector<float>{1, 2, 3, 4}, {4});
  auto dev = host.to(iogrid::Device::cuda(0));
  CHECK(dev.device() == iogrid::Device::cuda(0));
  CHECK_THROWS_WITH(dev.data<float>(), Catch::Contains("not in host memory"));
  CHECK(dev.clone().to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  // Large tensors cross through the pinned staging buffers in chunks (24 MiB + a tail: three and a bit chunks).
  std::vector<float> big((24u << 20) / 4 + 1001);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = float(i % 100003);
  auto round_trip = iogrid::Tensor::from(big, {std::int64_t(big.size())}).to(iogrid::Device::cuda(0)).to_vector<float>();
  CHECK(round_trip == big);
}

TEST_CASE("a worker on a fraction of a GPU cannot allocate more than its share of the device's memory", "[tensor][gpu]") {
  if (iogrid::gpu::cuda_device_count() == 0) {
    WARN("skipped: no CUDA device here; the scheduler's tests hold fractions to the device without one");
    return;
  }
  std::thread([] {
    iogrid::gpu::set_thread_memory_share(0, 0.01);  // 1% of device 0
    iogrid::Tensor small({1 << 20}, iogrid::DType::f32, iogrid::Device::cuda(0));  // 4 MiB: within any 1%
    CHECK_THROWS_WITH(iogrid::Tensor({std::int64_t(1) << 30}, iogrid::DType::f32, iogrid::Device::cuda(0)),
                      Catch::Contains("GPU memory share exceeded"));
    small = iogrid::Tensor();  // freed: the share is back
    iogrid::Tensor again({1 << 20}, iogrid::DType::f32, iogrid::Device::cuda(0));
    CHECK(again.numel() == (1u << 20));
  }).join();
}

namespace {
std::vector<double> my_gpus() {
  std::vector<double> out;
  for (const auto& g : iogrid::current_gpus()) out.push_back(g.device + g.fraction / 10);  // device.fraction/10
  return out;
}
IOGRID_REMOTE(my_gpus);
}  // namespace

TEST_CASE("a task learns which GPUs (and how much of each) it holds", "[tensor][gpu-assignment]") {
  iogrid::InitOptions o;
  o.nodes.push_back({.name = "box", .num_cpus = 4, .gpus = {{.model = "A100", .memory_gib = 40, .count = 4}}});
  Cluster c(o);
  CHECK(iogrid::current_gpus().empty());  // the driver holds none
  CHECK(iogrid::get(iogrid::task(my_gpus).remote()).empty());  // CPU work holds none
  auto two = iogrid::get(iogrid::task(my_gpus).options({.num_gpus = 2}).remote());
  REQUIRE(two.size() == 2);
  CHECK(two[0] != two[1]);
  auto half = iogrid::get(iogrid::task(my_gpus).options({.num_gpus = 0.5}).remote());
  REQUIRE(half.size() == 1);
  CHECK(half[0] - std::floor(half[0]) == Approx(0.05));  // half of one device
}
