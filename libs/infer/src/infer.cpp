#include "iogrid/infer.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <iostream>

#include "gpu/kernels/ops.hpp"
#include "iogrid/actor.hpp"
#include "iogrid/runtime.hpp"

namespace iogrid::infer {

class InferActor {
 public:
  explicit InferActor(ObjectRef<train::Checkpoint> weights) {
    auto gpus = current_gpus();
    auto ck = get(weights);
    model_ = std::make_unique<nn::Model>(ck.model, gpus.empty() ? Device::cpu() : Device::cuda(gpus.front().device));
    model_->set_weights(ck.weights);
    if (gpus.empty()) gpu::kernels::set_cpu_threads(1);  // one actor stands for one CPU
  }
  std::vector<std::int32_t> run(ObjectRef<data::Dataset> block, int batch) {
    auto d = get(block);
    std::vector<std::int32_t> out;
    out.reserve(d.size());
    const auto* img = d.images.data<std::uint8_t>();
    for (std::size_t at = 0; at < d.size(); at += std::size_t(batch)) {
      const int n = int(std::min<std::size_t>(std::size_t(batch), d.size() - at));
      auto p = model_->predict(img + at * d.features(), n);
      out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  }

 private:
  std::unique_ptr<nn::Model> model_;
};

}  // namespace iogrid::infer

IOGRID_REMOTE(&iogrid::infer::InferActor::run);

namespace iogrid::infer {

Result map_batches(const data::Dataset& d, const train::Checkpoint& model, Config c) {
  using Clock = std::chrono::steady_clock;
  if (c.batch_size < 1 || c.block_size < 1) throw Error("iogrid: batch and block sizes must be positive");
  model.model.check();
  if (d.features() != model.model.features())
    throw Error("iogrid: the model takes " + std::to_string(model.model.features()) + " features, the dataset has " +
                std::to_string(d.features()));
  if (!is_initialized()) throw Error("iogrid: call iogrid::init() before map_batches");
  const auto t0 = Clock::now();
  // Pool bounds from the cluster's capacity: the CPUs free now (CPUs held by others, a reservation's among them,
  // would leave actors unplaced, and the blocks queued on them waiting for good).
  double cpus = 0, gpus = 0;
  std::int64_t store = 0;
  for (const auto& n : nodes()) {
    cpus += n.available_cpus;
    gpus += double(n.gpus.size());
    store += n.object_store_capacity_bytes;
  }
  int max_actors = c.max_actors;
  if (max_actors <= 0)
    max_actors = std::max(1, int(c.gpus_per_actor > 0 ? gpus / c.gpus_per_actor : cpus / std::max(0.01, c.cpus_per_actor)));
  const int min_actors = std::clamp(c.min_actors, 1, max_actors);
  const std::size_t block_bytes = std::size_t(c.block_size) * (d.features() + 4);
  int in_flight_cap = c.max_blocks_in_flight > 0 ? c.max_blocks_in_flight : 2 * max_actors;
  if (store > 0) in_flight_cap = std::max(1, std::min<int>(in_flight_cap, int(std::size_t(store) / 4 / std::max<std::size_t>(1, block_bytes))));

  const std::size_t blocks = (d.size() + std::size_t(c.block_size) - 1) / std::size_t(c.block_size);
  auto weights = put(model);  // once; every actor gets the reference
  std::vector<ActorHandle<InferActor>> pool;
  auto grow = [&] {
    pool.push_back(actor<InferActor>(weights).options({.num_cpus = c.cpus_per_actor, .num_gpus = c.gpus_per_actor}).remote());
  };
  for (int i = 0; i < min_actors; ++i) grow();

  Result r;
  r.predictions.assign(d.size(), -1);
  struct Flight {
    std::size_t block;
    std::size_t actor;
    ObjectRef<std::vector<std::int32_t>> out;
  };
  std::vector<Flight> flying;
  std::vector<int> busy(pool.size(), 0);
  std::size_t next = 0, done = 0;
  auto last_report = Clock::now();
  while (done < blocks) {
    // Dispatch while there is room: to an idle actor, else a new one when the pool may grow, else queue up to
    // two blocks per actor (the actor runs them in order).
    while (next < blocks && int(flying.size()) < in_flight_cap) {
      auto idle = std::find(busy.begin(), busy.end(), 0);
      std::size_t a;
      if (idle != busy.end()) {
        a = std::size_t(idle - busy.begin());
      } else if (int(pool.size()) < max_actors) {
        grow();
        busy.push_back(0);
        a = pool.size() - 1;
      } else {
        a = std::size_t(std::min_element(busy.begin(), busy.end()) - busy.begin());
        if (busy[a] >= 2) break;
      }
      auto block = put(d.slice(next * std::size_t(c.block_size), (next + 1) * std::size_t(c.block_size)));
      flying.push_back({next, a, pool[a].call(&InferActor::run).remote(block, c.batch_size)});
      ++busy[a];
      ++next;
      r.max_in_flight = std::max(r.max_in_flight, int(flying.size()));
    }
    std::vector<ObjectRef<std::vector<std::int32_t>>> refs;
    for (auto& f : flying) refs.push_back(f.out);
    auto ready = wait(refs, 1);
    for (auto& ref : ready.ready) {
      auto it = std::find_if(flying.begin(), flying.end(), [&](const Flight& f) { return f.out == ref; });
      auto out = get(it->out);
      std::copy(out.begin(), out.end(), r.predictions.begin() + std::ptrdiff_t(it->block * std::size_t(c.block_size)));
      --busy[it->actor];
      flying.erase(it);
      ++done;
    }
    if (c.progress && (Clock::now() - last_report > std::chrono::milliseconds(500) || done == blocks)) {
      last_report = Clock::now();
      char line[160];
      std::snprintf(line, sizeof line, "\r[infer] %zu/%zu blocks, %zu actors, %zu in flight", done, blocks, pool.size(), flying.size());
      std::cerr << line << (done == blocks ? "\n" : "") << std::flush;
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.images_per_s = double(d.size()) / r.seconds;
  r.actors = int(pool.size());
  std::size_t hits = 0;
  const auto* lab = d.labels.data<std::int32_t>();
  for (std::size_t i = 0; i < d.size(); ++i) hits += r.predictions[i] == lab[i];
  r.accuracy = d.size() ? double(hits) / double(d.size()) : 0;
  for (auto& a : pool) a.kill();
  return r;
}

}  // namespace iogrid::infer
