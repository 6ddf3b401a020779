// Data-parallel training on Fashion-MNIST of the bundled MLP (784-256-128-10) or the small CNN (two conv blocks,
// then 1568-128-10): N worker actors, gradients averaged every step through a collective group, a checkpoint per
// epoch. Prints one line per epoch and the final test accuracy.
//
//   train_fashion_mnist [--model mlp|cnn] [--workers 2] [--epochs 15] [--batch 64] [--lr 0.05] [--lr-decay 0.85]
//                       [--gpus-per-worker 0] [--checkpoint-dir DIR] [--resume FILE] [--limit N] [--gang]
#include <iogrid/iogrid.hpp>
#include <iogrid/train.hpp>

#include <cstring>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  iogrid::train::Config c;
  c.workers = 2;
  c.epochs = 15;
  c.lr_decay = 0.85f;
  std::size_t limit = 0;
  bool gang = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") {
      const auto m = next();
      if (m == "cnn") c.model = iogrid::nn::small_cnn();
      else if (m == "mlp") c.model = iogrid::nn::ModelSpec{};
      else {
        std::cerr << "--model is mlp or cnn, not " << m << "\n";
        return 2;
      }
    } else if (a == "--workers") c.workers = std::stoi(next());
    else if (a == "--epochs") c.epochs = std::stoi(next());
    else if (a == "--batch") c.batch_size = std::stoi(next());
    else if (a == "--lr") c.optimizer.lr = std::stof(next());
    else if (a == "--lr-decay") c.lr_decay = std::stof(next());
    else if (a == "--gpus-per-worker") c.gpus_per_worker = std::stod(next());
    else if (a == "--checkpoint-dir") c.checkpoint_dir = next();
    else if (a == "--resume") c.resume_from = next();
    else if (a == "--limit") limit = std::stoul(next());
    else if (a == "--gang") gang = true;
    else if (a == "--help" || a == "-h") {
      std::cout << "usage: train_fashion_mnist [--model mlp|cnn] [--workers N] [--epochs E] [--batch B] [--lr LR] [--lr-decay D]\n"
                   "                           [--gpus-per-worker G] [--checkpoint-dir DIR] [--resume FILE] [--limit N] [--gang]\n"
                   "Trains a model on Fashion-MNIST (Debian's dataset-fashion-mnist) with N data-parallel workers:\n"
                   "the bundled MLP 784-256-128-10 (default) or the small CNN (conv 16 and conv 32, 3x3 with 2x2\n"
                   "max-pooling, then 1568-128-10). Defaults: 2 workers, 15 epochs, batch 64 per worker, SGD lr 0.05\n"
                   "with momentum 0.9, lr x0.85 per epoch. --limit N trains on the first N images only.\n"
                   "--gang reserves one GPU per worker as a gang for the run (all at once or a clear error) and runs\n"
                   "worker r on GPU r of it.\n";
      return 0;
    } else {
      std::cerr << "unknown option " << a << " (see --help)\n";
      return 2;
    }
  }
  if (gang) {
    c.gang = iogrid::ClusterSpec{.gpus = c.workers};
    if (c.gpus_per_worker == 0) c.gpus_per_worker = 1;
  }
  try {
    iogrid::init();
    auto train = iogrid::data::fashion_mnist("train");
    auto test = iogrid::data::fashion_mnist("test");
    if (limit) train = train.slice(0, limit);
    std::cout << "training " << c.model.describe() << " on " << train.size() << " images with " << c.workers << " workers, testing on " << test.size()
              << "\n";
    auto r = iogrid::train::fit(train, test, c);
    std::cout << "test accuracy " << r.test_accuracy << " after " << r.history.size() << " epochs, median "
              << r.samples_per_s << " samples/s, replicas identical: " << (r.replicas_identical ? "yes" : "no") << "\n";
    iogrid::shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "train_fashion_mnist: " << e.what() << "\n";
    return 1;
  }
}
