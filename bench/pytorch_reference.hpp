// The PyTorch reference of `iogrid bench workloads`: runs bench/pytorch/fashion_mnist.py (carried in the binary)
// with the first Python that has PyTorch ($IOGRID_PYTHON, python3, /usr/bin/python3) on the given images, and
// returns its rate. Without PyTorch, or when the script fails, `why` says so and no rate comes back.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "iogrid/data.hpp"

namespace iogrid::bench {

struct PytorchRun {
  std::string mode = "train";   // train | infer
  std::string model = "mlp";    // mlp (784-256-128-10) | cnn (small_cnn)
  std::string device = "cpu";   // cpu | cuda:0
  int batch = 64;
  int epochs = 3;               // timed epochs (passes for infer), after one warm-up
  int threads = 0;              // PyTorch's CPU threads (0: its default)
};

struct PytorchResult {
  double rate = 0;              // samples/s (train) or images/s (infer): the median timed epoch or pass
  std::vector<double> runs;
  std::string torch_version;
  int threads = 0;
};

class PytorchReference {
 public:
  // Writes the script and `data` (raw u8 pixels and int32 labels) into a temporary folder, removed at the end.
  explicit PytorchReference(const data::Dataset& d);
  ~PytorchReference();
  std::optional<PytorchResult> run(const PytorchRun& r, std::string* why);

 private:
  std::string dir_;
};

}  // namespace iogrid::bench
