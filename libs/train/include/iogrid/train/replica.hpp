// The trainer's building blocks, shared with the sweep's MLP trials (libs/tune): the device a worker actor
// trains on, one shuffled pass of SGD steps over a dataset, and checkpoint-style files (magic + serialised
// value, written atomically). Public so other libraries build on them; most programs want iogrid/train.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "iogrid/data.hpp"
#include "iogrid/nn.hpp"
#include "iogrid/serialization.hpp"

namespace iogrid::train {

// The GPU the calling task's lease holds (its first), else the CPU; a CPU replica runs its BLAS on one thread.
Device worker_device();

struct EpochStats {
  double loss_sum = 0;  // sum over steps of the batch mean loss
  std::int64_t correct = 0, samples = 0, steps = 0;
  IOGRID_SERIALIZE(loss_sum, correct, samples, steps)
};

// `steps` batches of `batch` examples of `d` in an order shuffled from `shuffle_seed` (wrapping around when
// steps x batch exceeds the data); `after_backward` runs between the gradients and the optimiser step (the
// data-parallel allreduce).
EpochStats train_epoch(nn::Model& model, nn::Optimizer& opt, const data::Dataset& d, int batch, int steps,
                       std::uint64_t shuffle_seed, const std::function<void()>& after_backward = {});

// Files holding an 8-byte magic then a serialised value; written to path.tmp and renamed, so a crash never
// leaves half a file under the name. `what` names the file in errors ("checkpoint", "sweep state").
void write_file(const std::string& path, const char (&magic)[8], const std::uint8_t* p, std::size_t n,
                const std::string& what);
core::BufferPtr read_file(const std::string& path, const char (&magic)[8], const std::string& what);

template <class T>
void save_value(const std::string& path, const char (&magic)[8], const T& v, const std::string& what) {
  auto buf = serialize(v);
  write_file(path, magic, buf->data(), buf->size(), what);
}
template <class T>
T load_value(const std::string& path, const char (&magic)[8], const std::string& what) {
  auto buf = read_file(path, magic, what);
  try {
    return deserialize<T>(buf);
  } catch (const std::exception& e) {
    throw Error("iogrid: " + what + " " + path + " is damaged (" + e.what() + ")");
  }
}

}  // namespace iogrid::train
