// Batch inference on Fashion-MNIST: trains the bundled MLP or the small CNN briefly (or loads a checkpoint of
// either), then classifies the 10,000 test images through a pool of inference actors with map_batches; prints
// images/s and accuracy.
//
//   batch_inference [--checkpoint FILE | --model mlp|cnn] [--batch 500] [--block 2000] [--max-actors N]
#include <iogrid/infer.hpp>
#include <iogrid/iogrid.hpp>
#include <iogrid/train.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  std::string checkpoint;
  iogrid::infer::Config c;
  iogrid::train::Config t;
  t.epochs = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--checkpoint") checkpoint = next();
    else if (a == "--model") {
      const auto m = next();
      if (m == "cnn") t.model = iogrid::nn::small_cnn();
      else if (m != "mlp") {
        std::cerr << "--model is mlp or cnn, not " << m << "\n";
        return 2;
      }
    }
    else if (a == "--batch") c.batch_size = std::stoi(next());
    else if (a == "--block") c.block_size = std::stoi(next());
    else if (a == "--max-actors") c.max_actors = std::stoi(next());
    else if (a == "--help" || a == "-h") {
      std::cout << "usage: batch_inference [--checkpoint FILE | --model mlp|cnn] [--batch B] [--block N] [--max-actors N]\n"
                   "Classifies Fashion-MNIST's test images with a pool of actors: the model of a checkpoint of\n"
                   "train_fashion_mnist (MLP or CNN), or the MLP (default) or the small CNN trained here for 2 epochs.\n";
      return 0;
    } else {
      std::cerr << "unknown option " << a << " (see --help)\n";
      return 2;
    }
  }
  try {
    iogrid::init();
    auto test = iogrid::data::fashion_mnist("test");
    iogrid::train::Checkpoint model;
    if (!checkpoint.empty()) {
      model = iogrid::train::load_checkpoint(checkpoint);
    } else {
      std::cout << "training " << t.model.describe() << " for 2 epochs first (pass --checkpoint to skip)\n";
      model = iogrid::train::fit(iogrid::data::fashion_mnist("train"), test, t).final;
    }
    auto r = iogrid::infer::map_batches(test, model, c);
    std::cout << "classified " << r.predictions.size() << " images in " << r.seconds << " s (" << r.images_per_s
              << " images/s) with " << r.actors << " actors; accuracy " << r.accuracy << "\n";
    iogrid::shutdown();
    return r.predictions.size() == test.size() ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "batch_inference: " << e.what() << "\n";
    return 1;
  }
}
