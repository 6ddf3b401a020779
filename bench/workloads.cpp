// `iogrid bench workloads`: the three workloads on Fashion-MNIST (embedded cluster of this machine).
// - train_fashion_mnist_test_accuracy: the bundled MLP, 2 workers, 15 epochs, batch 64 per worker, SGD
//   (lr 0.05, momentum 0.9, x0.85 per epoch) — the example's defaults.
// - train_2_workers_vs_1_samples_ratio: samples/s of 2 workers over 1 with the example's batch (64 per worker: the
//   per-worker batch fixed, as data-parallel scaling is measured) and optimiser, median epoch of 3, both in the
//   same run. The two workers are actors of this process, so their group takes the local backend.
// - batch_inference_pool_vs_loop_ratio: the 60,000 training images 4 times over through map_batches (a pool of 1-CPU
//   actors) against the same model's predict() in one plain loop on one thread; the loop with the BLAS library
//   on every core is printed too (batch_inference_loop_all_cores_images_per_s).
// - asha_vs_grid_time_ratio, asha_vs_grid_accuracy_gap_points: the example's 32-trial sweep (lr x hidden x batch,
//   up to 9 epochs, 50,000 training images, validation on the other 10,000), once with ASHA (grace 1, eta 3) and
//   once as a plain grid (every trial 9 epochs), both in the same run: trial-time of ASHA over the grid's, and the
//   grid's best validation accuracy minus ASHA's best, in points (positive: the grid found better).
// - train_cnn_fashion_mnist_test_accuracy: the small CNN (nn::small_cnn()), 2 workers, 10 epochs, otherwise as the MLP.
// - *_vs_pytorch_*: see pytorch_rows() below; skipped, saying why, where Python has no PyTorch (or there is no GPU).
#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <optional>
#include <thread>

#include "bench/pytorch_reference.hpp"
#include "bench/report.hpp"
#include "gpu/kernels/ops.hpp"
#include "gpu/memory.hpp"
#include "iogrid/infer.hpp"
#include "iogrid/iogrid.hpp"
#include "iogrid/train.hpp"
#include "iogrid/tune.hpp"
#include "iogrid/tune/mlp_trial.hpp"

namespace iogrid::bench {

namespace {
using Clock = std::chrono::steady_clock;

double loop_images_per_s(nn::Model& m, const data::Dataset& d, int batch) {
  auto t0 = Clock::now();
  for (std::size_t at = 0; at < d.size(); at += std::size_t(batch)) {
    const int n = int(std::min<std::size_t>(std::size_t(batch), d.size() - at));
    (void)m.predict(d.images.data<std::uint8_t>() + at * d.features(), n);
  }
  return double(d.size()) / secs(t0, Clock::now());
}
// The same MLP (784-256-128-10) against PyTorch, each ratio measured in one run: training with batch 64 (SGD,
// lr 0.05, momentum 0.9; iogrid: one worker; both: the median of 3 epochs), inference with batch 500 over the
// 60,000 training images. On the CPU (both sides on this machine's cores): iogrid's worker on 1 thread against
// PyTorch on 1 thread, and iogrid's inference pool against the faster of PyTorch on 1 thread and on every core.
// On a GPU: one worker (one inference actor) holding GPU 0 against PyTorch on cuda:0.
void pytorch_rows(const Options& o, const data::Dataset& train, const data::Dataset& test,
                  const std::function<bool(const std::string&)>& wanted, std::vector<Figure>& figs) {
  const bool cpu_rows = wanted("train_vs_pytorch_cpu_samples_ratio") || wanted("inference_vs_pytorch_cpu_images_ratio");
  const bool gpu_rows = wanted("train_vs_pytorch_samples_ratio") || wanted("inference_vs_pytorch_images_ratio");
  if (!cpu_rows && !gpu_rows) return;
  std::string no_gpu;
  const bool gpu = gpu::cuda_device_count(&no_gpu) > 0;
  if (gpu_rows && !gpu)
    progress(o, "train_vs_pytorch_samples_ratio and inference_vs_pytorch_images_ratio skipped: no GPU here (" + no_gpu + ")");
  PytorchReference ref(train);
  auto ratio_rows = [&](const std::string& name, const std::string& ours_name, const std::string& theirs_name,
                        const std::string& unit, const std::function<double()>& ours,
                        const std::function<std::optional<PytorchResult>(std::string*)>& theirs) {
    Figure ratio{name, 0, "x", true, {}}, mine{ours_name, 0, unit, true, {}}, other{theirs_name, 0, unit, true, {}};
    for (int run = 0; run < o.runs; ++run) {
      std::string why;
      auto py = theirs(&why);
      if (!py) {
        progress(o, name + " skipped: no PyTorch reference (" + why + ")");
        return;
      }
      const double m = ours();
      mine.runs.push_back(m);
      other.runs.push_back(py->rate);
      ratio.runs.push_back(m / py->rate);
      progress(o, "run " + std::to_string(run + 1) + ": iogrid " + std::to_string(m) + " " + unit + ", PyTorch " +
                      py->torch_version + " (" + std::to_string(py->threads) + " threads) " + std::to_string(py->rate) +
                      " " + unit + ", " + name + " " + std::to_string(ratio.runs.back()));
    }
    for (auto* f : {&ratio, &mine, &other}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  };
  auto train_rate = [&](double gpus) {
    train::Config c;
    c.workers = 1;
    c.epochs = 3;
    c.batch_size = 64;
    c.gpus_per_worker = gpus;
    c.progress = false;
    return train::fit(train, test, c).samples_per_s;
  };
  train::Checkpoint model;  // inference speed does not depend on the weights' values: a fresh model
  model.model = nn::ModelSpec{};
  model.weights = nn::Model(model.model).weights();
  auto infer_rate = [&](double gpus) {
    return infer::map_batches(train, model, {.batch_size = 500, .block_size = 5000, .gpus_per_actor = gpus, .progress = false})
        .images_per_s;
  };
  auto faster = [](std::optional<PytorchResult> a, std::optional<PytorchResult> b) {
    if (!a) return b;
    if (!b) return a;
    return a->rate >= b->rate ? a : b;
  };
  const int cores = int(std::thread::hardware_concurrency());
  if (wanted("train_vs_pytorch_cpu_samples_ratio"))
    ratio_rows("train_vs_pytorch_cpu_samples_ratio", "train_1_worker_cpu_samples_per_s", "pytorch_cpu_train_samples_per_s",
               "/s", [&] { return train_rate(0); },
               [&](std::string* why) { return ref.run({.mode = "train", .device = "cpu", .batch = 64, .threads = 1}, why); });
  if (wanted("inference_vs_pytorch_cpu_images_ratio"))
    ratio_rows("inference_vs_pytorch_cpu_images_ratio", "inference_pool_cpu_images_per_s", "pytorch_cpu_inference_images_per_s",
               "/s", [&] { return infer_rate(0); }, [&](std::string* why) {
                 return faster(ref.run({.mode = "infer", .device = "cpu", .batch = 500, .threads = 1}, why),
                               ref.run({.mode = "infer", .device = "cpu", .batch = 500, .threads = cores}, why));
               });
  if (!gpu) return;
  if (wanted("train_vs_pytorch_samples_ratio"))
    ratio_rows("train_vs_pytorch_samples_ratio", "train_1_gpu_samples_per_s", "pytorch_gpu_train_samples_per_s", "/s",
               [&] { return train_rate(1); },
               [&](std::string* why) { return ref.run({.mode = "train", .device = "cuda:0", .batch = 64}, why); });
  if (wanted("inference_vs_pytorch_images_ratio"))
    ratio_rows("inference_vs_pytorch_images_ratio", "inference_1_gpu_images_per_s", "pytorch_gpu_inference_images_per_s", "/s",
               [&] { return infer_rate(1); },
               [&](std::string* why) { return ref.run({.mode = "infer", .device = "cuda:0", .batch = 500}, why); });
}
}  // namespace

int run_workloads(const Options& o) {
  auto wanted = selection(o, "workloads", {
        "train_fashion_mnist_test_accuracy",
        "train_2_workers_vs_1_samples_ratio",
        "batch_inference_pool_vs_loop_ratio",
        "asha_vs_grid_time_ratio",
        "asha_vs_grid_accuracy_gap_points",
        "train_cnn_fashion_mnist_test_accuracy",
        "train_vs_pytorch_cpu_samples_ratio",
        "inference_vs_pytorch_cpu_images_ratio",
        "train_vs_pytorch_samples_ratio",
        "inference_vs_pytorch_images_ratio"});
  std::vector<Figure> figs;
  auto train = data::fashion_mnist("train");
  auto test = data::fashion_mnist("test");
  iogrid::init();
  train::Checkpoint model;  // for inference: the accuracy run's model, or a short training
  // The example's defaults: 2 workers, batch 64 per worker, SGD lr 0.05 with momentum 0.9, x0.85 per epoch.
  auto fit_two_workers = [&](nn::ModelSpec spec, int epochs) {
    train::Config c;
    c.model = std::move(spec);
    c.workers = 2;
    c.epochs = epochs;
    c.lr_decay = 0.85f;
    c.progress = !o.json;
    return train::fit(train, test, c);
  };
  if (wanted("train_fashion_mnist_test_accuracy")) {
    Figure acc{"train_fashion_mnist_test_accuracy", 0, "fraction", true, {}};
    Figure rate{"train_2_workers_samples_per_s", 0, "/s", true, {}};
    for (int run = 0; run < o.runs; ++run) {
      auto r = fit_two_workers(nn::ModelSpec{}, 15);
      acc.runs.push_back(r.test_accuracy);
      rate.runs.push_back(r.samples_per_s);
      model = r.final;
      progress(o, "run " + std::to_string(run + 1) + ": test accuracy " + std::to_string(r.test_accuracy) + " after 15 epochs, " +
                      std::to_string(r.samples_per_s) + " samples/s, replicas identical: " + (r.replicas_identical ? "yes" : "no"));
    }
    for (auto* f : {&acc, &rate}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  if (wanted("train_2_workers_vs_1_samples_ratio")) {
    Figure ratio{"train_2_workers_vs_1_samples_ratio", 0, "x", true, {}};
    for (int run = 0; run < o.runs; ++run) {
      double rates[2];
      for (int w = 1; w <= 2; ++w) {
        train::Config c;  // the example's batch (64 per worker) and optimiser
        c.workers = w;
        c.epochs = 3;
        c.progress = false;
        rates[w - 1] = train::fit(train, test, c).samples_per_s;
      }
      ratio.runs.push_back(rates[1] / rates[0]);
      progress(o, "run " + std::to_string(run + 1) + ": 1 worker " + std::to_string(rates[0]) + " samples/s, 2 workers " +
                      std::to_string(rates[1]) + " samples/s, ratio " + std::to_string(ratio.runs.back()));
    }
    ratio.value = median(ratio.runs);
    figs.push_back(ratio);
  }
  if (wanted("batch_inference_pool_vs_loop_ratio")) {
    if (model.weights.empty()) {
      train::Config c;
      c.epochs = 2;
      c.progress = false;
      model = train::fit(train, test, c).final;
    }
    Figure ratio{"batch_inference_pool_vs_loop_ratio", 0, "x", true, {}};
    Figure pool_rate{"batch_inference_pool_images_per_s", 0, "/s", true, {}};
    Figure loop_all{"batch_inference_loop_all_cores_images_per_s", 0, "/s", true, {}};
    nn::Model m(model.model);
    m.set_weights(model.weights);
    // The 60,000 training images 4 times over (240,000), so a run lasts about a second, pool start included.
    const auto& one = train;
    std::vector<std::uint8_t> px;
    std::vector<std::int32_t> lab;
    for (int k = 0; k < 4; ++k) {
      px.insert(px.end(), one.images.data<std::uint8_t>(), one.images.data<std::uint8_t>() + one.size() * one.features());
      lab.insert(lab.end(), one.labels.data<std::int32_t>(), one.labels.data<std::int32_t>() + one.size());
    }
    const auto images = data::Dataset::from(std::move(px), std::move(lab), one.features());
    for (int run = 0; run < o.runs; ++run) {
      gpu::kernels::set_cpu_threads(1);
      const double loop = loop_images_per_s(m, images, 500);
      gpu::kernels::set_cpu_threads(0);
      loop_all.runs.push_back(loop_images_per_s(m, images, 500));
      auto r = infer::map_batches(images, model, {.batch_size = 500, .block_size = 5000, .progress = false});
      pool_rate.runs.push_back(r.images_per_s);
      ratio.runs.push_back(r.images_per_s / loop);
      progress(o, "run " + std::to_string(run + 1) + ": loop (1 thread) " + std::to_string(loop) + " images/s, loop (all cores) " +
                      std::to_string(loop_all.runs.back()) + ", pool of " + std::to_string(r.actors) + " actors " +
                      std::to_string(r.images_per_s) + " images/s (accuracy " + std::to_string(r.accuracy) + "), ratio " +
                      std::to_string(ratio.runs.back()));
    }
    for (auto* f : {&ratio, &pool_rate, &loop_all}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  if (wanted("asha_vs_grid_time_ratio") || wanted("asha_vs_grid_accuracy_gap_points")) {
    Figure time{"asha_vs_grid_time_ratio", 0, "x", false, {}};
    Figure gap{"asha_vs_grid_accuracy_gap_points", 0, "points", false, {}};
    Figure asha_best{"asha_best_validation_accuracy", 0, "fraction", true, {}};
    Figure grid_best{"grid_best_validation_accuracy", 0, "fraction", true, {}};
    Figure asha_secs{"asha_trial_seconds", 0, "s", false, {}};
    Figure grid_secs{"grid_trial_seconds", 0, "s", false, {}};
    const auto data = tune::mlp_trial_data(train.slice(0, 50000), train.slice(50000, train.size()));
    const auto space = tune::mlp_sweep_space();
    for (int run = 0; run < o.runs; ++run) {
      tune::Config c;
      c.max_iterations = 9;
      c.progress = false;
      c.name = "grid";
      const auto grid = tune::run<tune::MlpTrial>(space, c, data);
      c.name = "asha";
      c.scheduler = std::make_shared<tune::AshaScheduler>(tune::AshaOptions{.grace = 1, .eta = 3});
      const auto asha = tune::run<tune::MlpTrial>(space, c, data);
      time.runs.push_back(asha.trial_seconds / grid.trial_seconds);
      gap.runs.push_back(100 * (grid.best_metric() - asha.best_metric()));
      asha_best.runs.push_back(asha.best_metric());
      grid_best.runs.push_back(grid.best_metric());
      asha_secs.runs.push_back(asha.trial_seconds);
      grid_secs.runs.push_back(grid.trial_seconds);
      progress(o, "run " + std::to_string(run + 1) + ": grid best " + grid.best_params().str() + " " +
                      std::to_string(grid.best_metric()) + " (" + std::to_string(grid.iterations) + " epochs, trial-time " +
                      std::to_string(grid.trial_seconds) + " s); asha best " + asha.best_params().str() + " " +
                      std::to_string(asha.best_metric()) + " (" + std::to_string(asha.iterations) + " epochs, trial-time " +
                      std::to_string(asha.trial_seconds) + " s)");
    }
    for (auto* f : {&time, &gap, &asha_best, &grid_best, &asha_secs, &grid_secs}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  if (wanted("train_cnn_fashion_mnist_test_accuracy")) {
    Figure acc{"train_cnn_fashion_mnist_test_accuracy", 0, "fraction", true, {}};
    Figure rate{"train_cnn_2_workers_samples_per_s", 0, "/s", true, {}};
    for (int run = 0; run < o.runs; ++run) {
      auto r = fit_two_workers(nn::small_cnn(), 10);
      acc.runs.push_back(r.test_accuracy);
      rate.runs.push_back(r.samples_per_s);
      progress(o, "run " + std::to_string(run + 1) + ": small CNN test accuracy " + std::to_string(r.test_accuracy) +
                      " after 10 epochs, " + std::to_string(r.samples_per_s) + " samples/s");
    }
    for (auto* f : {&acc, &rate}) {
      f->value = median(f->runs);
      figs.push_back(*f);
    }
  }
  pytorch_rows(o, train, test, wanted, figs);
  iogrid::shutdown();
  print("workloads", o, figs);
  return 0;
}

}  // namespace iogrid::bench
