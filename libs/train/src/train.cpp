#include "iogrid/train.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <random>

#include "gpu/kernels/ops.hpp"
#include "iogrid/actor.hpp"
#include "iogrid/clusters.hpp"
#include "iogrid/collective.hpp"
#include "iogrid/remote.hpp"
#include "iogrid/runtime.hpp"
#include "iogrid/train/replica.hpp"

namespace iogrid::train {

// --- checkpoints on disk: "IOGRIDCK" + the serialised Checkpoint --------------------------------------------
namespace {
constexpr char kMagic[8] = {'I', 'O', 'G', 'R', 'I', 'D', 'C', 'K'};
}

void save_checkpoint(const Checkpoint& c, const std::string& path) { save_value(path, kMagic, c, "checkpoint"); }

Checkpoint load_checkpoint(const std::string& path) { return load_value<Checkpoint>(path, kMagic, "checkpoint"); }

// --- the worker actor --------------------------------------------------------------------------------------
struct WorkerSpec {
  nn::ModelSpec model;
  nn::OptimizerSpec optimizer;
  int rank = 0, world = 1, batch = 64;
  std::uint64_t seed = 1;
  std::string group;
  std::int64_t timeout_ms = 10000;
  IOGRID_SERIALIZE(model, optimizer, rank, world, batch, seed, group, timeout_ms)
};



class TrainWorker {
 public:
  // `from` is the gang's checkpoint in the object store (no weights: a fresh model from the spec's seed).
  TrainWorker(WorkerSpec spec, ObjectRef<data::Dataset> train, ObjectRef<Checkpoint> from)
      : spec_(std::move(spec)),
        model_(spec_.model, worker_device()),
        opt_(model_, spec_.optimizer) {
    shard_ = get(train).shard(spec_.rank, spec_.world);
    const auto start = get(from);
    if (!start.weights.empty()) {
      model_.set_weights(start.weights);
      opt_.set_state(start.optimizer_state, start.optimizer_steps);
    }
    group_ = collective::Group::join(spec_.group, spec_.rank, spec_.world,
                                     {.timeout = std::chrono::milliseconds(spec_.timeout_ms)});
  }

  // One pass over the shard; `steps` is the gang's common step count.
  EpochStats epoch(int e, int steps, float lr) {
    opt_.set_lr(lr);
    const std::uint64_t seed = spec_.seed * 1000003ull + std::uint64_t(e) * 7919ull + std::uint64_t(spec_.rank);
    return train_epoch(model_, opt_, shard_, spec_.batch, steps, seed, [&] {
      if (spec_.world > 1) group_.allreduce(model_.grads(), collective::ReduceOp::mean);
    });
  }

  Checkpoint checkpoint(int epoch) {
    Checkpoint c;
    c.epoch = epoch;
    c.model = spec_.model;
    c.weights = model_.weights();
    c.optimizer_state = opt_.state();
    c.optimizer_steps = opt_.steps();
    return c;
  }

  double evaluate(ObjectRef<data::Dataset> test) { return model_.evaluate(get(test)).accuracy(); }

  std::string node() { return current_node(); }

  // FNV-1a over the weights' bits: equal digests on every rank mean identical replicas.
  std::uint64_t digest() {
    auto w = model_.weights();
    std::uint64_t h = 1469598103934665603ull;
    const auto* p = reinterpret_cast<const std::uint8_t*>(w.data());
    for (std::size_t i = 0; i < w.size() * 4; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }

 private:
  WorkerSpec spec_;
  nn::Model model_;
  nn::Optimizer opt_;
  data::Dataset shard_;
  collective::Group group_;
};

}  // namespace iogrid::train

IOGRID_REMOTE(&iogrid::train::TrainWorker::epoch);
IOGRID_REMOTE(&iogrid::train::TrainWorker::checkpoint);
IOGRID_REMOTE(&iogrid::train::TrainWorker::evaluate);
IOGRID_REMOTE(&iogrid::train::TrainWorker::digest);
IOGRID_REMOTE(&iogrid::train::TrainWorker::node);

namespace iogrid::train {

struct Trainer::Impl {
  Config cfg;
  std::string run_id = [] {  // a group name is used for one formation only: unique per trainer and attempt
    std::random_device rd;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    return std::string(buf);
  }();
  ObjectRef<data::Dataset> train, test;
  std::size_t train_size = 0;
  std::mutex m;
  std::vector<ActorHandle<TrainWorker>> gang;
  std::string cluster;  // the reservation the workers run in (bundle r for rank r)
  bool owns_cluster = false;

  std::vector<ActorHandle<TrainWorker>> start_gang(int attempt, const ObjectRef<Checkpoint>& from) {
    std::vector<ActorHandle<TrainWorker>> g;
    for (int r = 0; r < cfg.workers; ++r) {
      WorkerSpec s;
      s.model = cfg.model;
      s.optimizer = cfg.optimizer;
      s.rank = r;
      s.world = cfg.workers;
      s.batch = cfg.batch_size;
      s.seed = cfg.seed;
      s.group = cfg.name + "-" + run_id + "-" + std::to_string(attempt);
      s.timeout_ms = cfg.collective_timeout.count();
      ActorOptions o{.num_cpus = cfg.cpus_per_worker, .num_gpus = cfg.gpus_per_worker};
      if (!cluster.empty()) {
        o.cluster = cluster;
        o.bundle = r;
      }
      g.push_back(actor<TrainWorker>(s, train, from).options(o).remote());
    }
    std::lock_guard<std::mutex> l(m);
    gang = g;
    return g;
  }
  void stop_gang() {
    std::lock_guard<std::mutex> l(m);
    for (auto& w : gang) w.kill();
    gang.clear();
  }
};

Trainer::Trainer(Config config, const data::Dataset& train, const data::Dataset& test) : impl_(std::make_unique<Impl>()) {
  auto& c = config;
  if (c.workers < 1) throw Error("iogrid: training needs at least one worker");
  if (c.epochs < 1) throw Error("iogrid: training needs at least one epoch");
  if (c.batch_size < 1) throw Error("iogrid: the batch size must be positive");
  if (train.size() == 0) throw Error("iogrid: the training set is empty");
  c.model.check();
  if (train.features() != c.model.features())
    throw Error("iogrid: the model takes " + std::to_string(c.model.features()) + " features, the training set has " +
                std::to_string(train.features()));
  if (train.size() < std::size_t(c.workers) * std::size_t(c.batch_size))
    throw Error("iogrid: " + std::to_string(train.size()) + " training examples are fewer than one batch per worker");
  if (!is_initialized()) throw Error("iogrid: call iogrid::init() before training");
  impl_->cfg = std::move(config);
  impl_->train = put(train);
  impl_->test = put(test);
  impl_->train_size = train.size();
}

Trainer::~Trainer() = default;

void Trainer::kill_worker(int rank) {
  std::lock_guard<std::mutex> l(impl_->m);
  if (rank >= 0 && std::size_t(rank) < impl_->gang.size()) impl_->gang[std::size_t(rank)].kill();
}

Result Trainer::fit() {
  auto& I = *impl_;
  auto& c = I.cfg;
  using Clock = std::chrono::steady_clock;
  Result res;
  Checkpoint last;
  last.model = c.model;
  if (!c.resume_from.empty()) {
    last = load_checkpoint(c.resume_from);
    if (!last.model.same_architecture(c.model)) throw Error("iogrid: checkpoint " + c.resume_from + " holds another model");
  }
  if (!c.checkpoint_dir.empty()) std::filesystem::create_directories(c.checkpoint_dir);
  if (c.gang && !c.cluster.empty()) throw Error("iogrid: give the trainer a gang to reserve or a cluster to use, not both");
  I.cluster = c.cluster;
  if (c.gang) {
    I.cluster = create_cluster(*c.gang).id;
    I.owns_cluster = true;
    if (c.progress) std::cerr << "[train] reserved " << c.gang->gpus << " GPU(s) as gang " << I.cluster << "\n";
  }
  // A reservation made here ends with fit(), however it ends.
  struct Release {
    Impl& I;
    ~Release() {
      if (!I.owns_cluster) return;
      try {
        delete_cluster(I.cluster);
      } catch (const std::exception&) {
      }
      I.owns_cluster = false;
    }
  } release{I};
  if (!I.cluster.empty()) {
    int bundles = -1;
    for (const auto& info : list_clusters())
      if (info.id == I.cluster) bundles = int(info.bundles.size());
    if (bundles < 0) throw Error("iogrid: there is no reservation " + I.cluster);
    if (bundles < c.workers)
      throw Error("iogrid: reservation " + I.cluster + " has " + std::to_string(bundles) + " bundles for " +
                  std::to_string(c.workers) + " workers");
  }
  res.cluster = I.cluster;
  const int steps = int((I.train_size / std::size_t(c.workers)) / std::size_t(c.batch_size));
  int attempt = 0;
  // The learning rate of the epoch after `done` epochs.
  auto lr_after = [&](int done) { return c.optimizer.lr * std::pow(c.lr_decay, float(done)); };
  ObjectRef<Checkpoint> stored = put(last);  // the newest checkpoint, which a new gang starts from
  auto gang = I.start_gang(attempt, stored);
  int epoch = last.epoch;
  while (epoch < c.epochs) {
    const auto t0 = Clock::now();
    try {
      std::vector<ObjectRef<EpochStats>> parts;
      for (auto& w : gang) parts.push_back(w.call(&TrainWorker::epoch).remote(epoch + 1, steps, lr_after(epoch)));
      auto stats = get(parts);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      auto ck = get(gang[0].call(&TrainWorker::checkpoint).remote(epoch + 1));
      EpochMetrics m;
      m.epoch = epoch + 1;
      for (const auto& s : stats) {
        m.loss += s.loss_sum;
        m.train_accuracy += double(s.correct);
        m.samples += s.samples;
      }
      m.loss /= double(std::max<std::int64_t>(1, stats[0].steps * std::int64_t(stats.size())));
      m.train_accuracy /= double(std::max<std::int64_t>(1, m.samples));
      m.seconds = secs;
      m.samples_per_s = double(m.samples) / secs;
      m.test_accuracy = get(gang[0].call(&TrainWorker::evaluate).remote(I.test));
      m.restarts = res.restarts;
      last = std::move(ck);
      stored = put(last);
      if (!c.checkpoint_dir.empty())
        save_checkpoint(last, (std::filesystem::path(c.checkpoint_dir) / ("checkpoint-" + std::to_string(m.epoch) + ".bin")).string());
      res.history.push_back(m);
      if (c.progress) {
        char line[256];
        std::snprintf(line, sizeof line, "[train] epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f  %.0f samples/s  %.1f s%s\n",
                      m.epoch, c.epochs, m.loss, m.train_accuracy, m.test_accuracy, m.samples_per_s, m.seconds,
                      res.restarts ? ("  (" + std::to_string(res.restarts) + " restarts)").c_str() : "");
        std::cerr << line << std::flush;
      }
      if (c.on_epoch) c.on_epoch(m);
      ++epoch;
    } catch (const Error& err) {
      // A worker died or a collective failed: replace the gang, resume from the last checkpoint.
      I.stop_gang();
      if (res.restarts >= c.max_restarts)
        throw Error("iogrid: training failed after " + std::to_string(res.restarts) + " gang restarts: " + err.what());
      ++res.restarts;
      if (c.progress)
        std::cerr << "[train] epoch " << epoch + 1 << " failed (" << err.what() << "); restarting the gang from epoch "
                  << last.epoch << " (restart " << res.restarts << " of at most " << c.max_restarts << ")\n";
      epoch = last.epoch;
      gang = I.start_gang(++attempt, stored);
    }
  }
  std::vector<ObjectRef<std::uint64_t>> digests;
  std::vector<ObjectRef<std::string>> nodes;
  for (auto& w : gang) {
    digests.push_back(w.call(&TrainWorker::digest).remote());
    nodes.push_back(w.call(&TrainWorker::node).remote());
  }
  try {
    auto d = get(digests);
    res.replicas_identical = std::all_of(d.begin(), d.end(), [&](std::uint64_t x) { return x == d[0]; });
    res.worker_nodes = get(nodes);
  } catch (const Error&) {
    res.replicas_identical = false;  // a worker died after the last epoch: training is complete, the check is not
  }
  I.stop_gang();
  res.final = last;
  res.test_accuracy = res.history.empty() ? 0 : res.history.back().test_accuracy;
  std::vector<double> rates;
  for (const auto& m : res.history) rates.push_back(m.samples_per_s);
  if (!rates.empty()) {
    std::sort(rates.begin(), rates.end());
    res.samples_per_s = rates[rates.size() / 2];
  }
  return res;
}

}  // namespace iogrid::train
