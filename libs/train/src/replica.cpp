#include "iogrid/train/replica.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <vector>

#include "gpu/kernels/ops.hpp"
#include "iogrid/runtime.hpp"

namespace iogrid::train {

Device worker_device() {
  auto gpus = current_gpus();
  if (!gpus.empty()) return Device::cuda(gpus.front().device);
  gpu::kernels::set_cpu_threads(1);
  return Device::cpu();
}

EpochStats train_epoch(nn::Model& model, nn::Optimizer& opt, const data::Dataset& d, int batch, int steps,
                       std::uint64_t shuffle_seed, const std::function<void()>& after_backward) {
  std::vector<std::uint32_t> order(d.size());
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937_64 rng(shuffle_seed);
  std::shuffle(order.begin(), order.end(), rng);
  const std::size_t f = d.features(), b = std::size_t(batch);
  std::vector<std::uint8_t> x(b * f);
  std::vector<std::int32_t> y(b);
  const auto* img = d.images.data<std::uint8_t>();
  const auto* lab = d.labels.data<std::int32_t>();
  EpochStats s;
  for (int step = 0; step < steps; ++step) {
    for (std::size_t i = 0; i < b; ++i) {
      const std::size_t src = order[(std::size_t(step) * b + i) % order.size()];
      std::copy(img + src * f, img + (src + 1) * f, x.data() + i * f);
      y[i] = lab[src];
    }
    auto bs = model.train_batch(x.data(), y.data(), batch);
    if (after_backward) after_backward();
    opt.step();
    s.loss_sum += bs.loss;
    s.correct += bs.correct;
    s.samples += bs.count;
    ++s.steps;
  }
  return s;
}

void write_file(const std::string& path, const char (&magic)[8], const std::uint8_t* p, std::size_t n,
                const std::string& what) {
  const auto tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(magic, 8);
    f.write(reinterpret_cast<const char*>(p), std::streamsize(n));
    if (!f) throw Error("iogrid: cannot write " + what + " " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

core::BufferPtr read_file(const std::string& path, const char (&magic)[8], const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("iogrid: " + what + " " + path + " does not exist or cannot be read");
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8 || !std::equal(magic, magic + 8, bytes.begin()))
    throw Error("iogrid: " + path + " is not an iogrid " + what);
  auto buf = core::make_buffer(bytes.size() - 8);
  std::copy(bytes.begin() + 8, bytes.end(), buf->data());
  return buf;
}

}  // namespace iogrid::train
