// A hyperparameter sweep on Fashion-MNIST: 32 trials of the bundled MLP (lr x hidden size x batch size), each
// trial an actor on one CPU, early-stopped by ASHA; 50,000 training images, validated on the other 10,000.
// Prints the results table, the best config and its test accuracy. --compare-grid also runs every trial to the
// end and prints how far ASHA's best is from the grid's and the trial-time each took.
//
//   sweep_fashion_mnist [--scheduler asha|fifo] [--max-epochs 9] [--eta 3] [--concurrent N] [--dir DIR] [--resume]
//                       [--limit N] [--compare-grid] [--csv FILE]
#include <iogrid/iogrid.hpp>
#include <iogrid/nn.hpp>
#include <iogrid/train.hpp>
#include <iogrid/tune.hpp>
#include <iogrid/tune/mlp_trial.hpp>

#include <iostream>
#include <string>

namespace tune = iogrid::tune;

int main(int argc, char** argv) {
  tune::Config c;
  c.name = "sweep";
  c.max_iterations = 9;
  std::string scheduler = "asha";
  int eta = 3;
  std::size_t limit = 0;
  bool compare = false;
  std::string csv;  // every trial with its metric after each epoch
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--scheduler") scheduler = next();
    else if (a == "--max-epochs") c.max_iterations = std::stoi(next());
    else if (a == "--eta") eta = std::stoi(next());
    else if (a == "--concurrent") c.max_concurrent = std::stoi(next());
    else if (a == "--dir") c.dir = next();
    else if (a == "--resume") c.resume = true;
    else if (a == "--limit") limit = std::stoul(next());
    else if (a == "--compare-grid") compare = true;
    else if (a == "--csv") csv = next();
    else if (a == "--help" || a == "-h") {
      std::cout << "usage: sweep_fashion_mnist [--scheduler asha|fifo] [--max-epochs E] [--eta N] [--concurrent N]\n"
                   "                           [--dir DIR] [--resume] [--limit N] [--compare-grid] [--csv FILE]\n"
                   "Sweeps lr x hidden x batch (32 trials) for the bundled MLP on Fashion-MNIST (Debian's\n"
                   "dataset-fashion-mnist). --dir keeps the state and the best checkpoints; --resume continues an\n"
                   "interrupted sweep from it. --limit N trains on the first N of the 50,000 training images.\n"
                   "--compare-grid also runs the full grid (every trial to the last epoch) and compares.\n"
                   "--csv FILE writes every trial with its validation accuracy after each epoch (the grid's to\n"
                   "FILE.grid.csv).\n";
      return 0;
    } else {
      std::cerr << "unknown option " << a << " (see --help)\n";
      return 2;
    }
  }
  if (scheduler != "asha" && scheduler != "fifo") {
    std::cerr << "--scheduler must be asha or fifo\n";
    return 2;
  }
  try {
    if (scheduler == "asha") c.scheduler = std::make_shared<tune::AshaScheduler>(tune::AshaOptions{.grace = 1, .eta = eta});
    iogrid::init();
    auto all = iogrid::data::fashion_mnist("train");
    auto train = all.slice(0, limit ? std::min<std::size_t>(limit, 50000) : 50000);
    auto validation = all.slice(50000, all.size());
    auto data = tune::mlp_trial_data(train, validation);
    const auto space = tune::mlp_sweep_space();
    auto r = tune::run<tune::MlpTrial>(space, c, data);
    std::cout << r.table(12);
    if (!csv.empty()) r.write_csv(csv);
    const auto& best = r.best_trial();
    const auto ck = tune::MlpTrial::checkpoint_of(r.best_checkpoint);
    iogrid::nn::Model model(ck.model);
    model.set_weights(ck.weights);
    const double test = model.evaluate(iogrid::data::fashion_mnist("test")).accuracy();
    std::cout << "best config: " << best.params.str() << "  validation accuracy " << r.best_metric() << " after "
              << best.iterations() << " epochs, test accuracy " << test << "\n"
              << scheduler << ": " << r.iterations << " epochs in all, trial-time " << r.trial_seconds << " s, wall "
              << r.wall_seconds << " s\n";
    if (compare) {
      tune::Config g = c;
      g.scheduler = nullptr;
      g.dir.clear();
      g.resume = false;
      g.name = "grid";
      auto gr = tune::run<tune::MlpTrial>(space, g, data);
      if (!csv.empty()) gr.write_csv(csv + ".grid.csv");
      std::cout << "grid: best " << gr.best_params().str() << " validation accuracy " << gr.best_metric()
                << ", trial-time " << gr.trial_seconds << " s, wall " << gr.wall_seconds << " s\n"
                << scheduler << " vs grid: accuracy gap " << 100 * (gr.best_metric() - r.best_metric())
                << " points, trial-time ratio " << r.trial_seconds / gr.trial_seconds << "\n";
    }
    iogrid::shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "sweep_fashion_mnist: " << e.what() << "\n";
    return 1;
  }
}
