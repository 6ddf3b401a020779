// Training checkpoints (`train::load_checkpoint`, `Config::resume_from`): a file from anywhere; one that loads
// is then used the way resuming uses it: its model spec checked, the model built and its weights and
// optimiser state restored (each refusing what does not fit with iogrid::Error).
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz.hpp"
#include "iogrid/train.hpp"

namespace {

using namespace iogrid;

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  auto dir = std::filesystem::temp_directory_path() / "iogrid-fuzz-seeds";
  std::filesystem::create_directories(dir);
  auto file = (dir / "checkpoint.bin").string();
  for (int conv = 0; conv < 2; ++conv) {
    train::Checkpoint c;
    c.epoch = 3;
    c.model.layers = {8, 4, 3};
    if (conv) {
      c.model.image = {4, 4, 1};
      c.model.conv = {nn::Conv{2, 3, 2}};
      c.model.layers = {2 * 2 * 2, 3};
    }
    nn::Model m(c.model);
    c.weights = m.weights();
    nn::Optimizer opt(m, nn::OptimizerSpec{});
    c.optimizer_state = opt.state();
    c.optimizer_steps = 5;
    train::save_checkpoint(c, file);
    std::ifstream f(file, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace

IOGRID_FUZZ_TARGET(checkpoint, seeds) {
  auto path = fuzz::scratch_file(data, size);
  try {
    auto c = train::load_checkpoint(path);
    c.model.check();
    // Bigger models are not built here (a fuzzer's time and memory budget): at most 64K weights, judged by
    // an upper bound of what the spec's layers and blocks hold.
    double bound = 0;
    int in_channels = c.model.image.size() == 3 ? c.model.image[2] : 1;
    for (const auto& b : c.model.conv) {
      bound += double(b.channels) * (double(b.kernel) * b.kernel * in_channels + 1);
      in_channels = b.channels;
    }
    for (std::size_t i = 0; i + 1 < c.model.layers.size(); ++i) bound += (double(c.model.layers[i]) + 1) * c.model.layers[i + 1];
    for (auto d : c.model.image) bound += double(d) * d;
    if (bound > 65536) return 0;
    nn::Model m(c.model);
    m.set_weights(c.weights);
    nn::Optimizer opt(m, nn::OptimizerSpec{});
    opt.set_state(c.optimizer_state, c.optimizer_steps);
  } catch (const Error&) {
  }
  return 0;
}
