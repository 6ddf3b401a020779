// Hyperparameter sweeps: trials as actors, each with its own resources (a fraction of a GPU allowed), a search
// space searched by grid or at random, early stopping by a scheduler (ASHA), checkpoints of the best trials,
// a results table, and resume of an interrupted sweep.
//
// A trainable is a class run one iteration (an epoch) at a time:
//
//   struct MyTrial {
//     using Shared = MyData;                       // optional: put once, every trial gets it (else MyTrial(Params))
//     MyTrial(const iogrid::tune::Params& p, const MyData& d);
//     iogrid::tune::Metrics step();                // one iteration; returns {"accuracy", ...}
//     iogrid::Bytes save();                        // a checkpoint
//     void restore(const iogrid::Bytes& b);        // continue from one
//   };
//
//   iogrid::tune::Space space;
//   space.add("lr", tune::grid({0.01, 0.1})).add("hidden", tune::grid({64, 256}));
//   iogrid::tune::Config c;
//   c.max_iterations = 9;
//   c.scheduler = std::make_shared<iogrid::tune::AshaScheduler>();
//   auto r = iogrid::tune::run<MyTrial>(space, c, data);
//   std::cout << r.table() << r.best_params().str();
//
// Rules:
// - Up to max_concurrent trials run at once, each on its own actor (num_cpus/num_gpus from `resources`). A trial
//   runs until the scheduler's target, then pauses with a checkpoint (in the object store, and on disk when `dir`
//   is set); a promoted trial continues on the same actor when it is still there, else on a new one restored
//   from the checkpoint. The scheduler decides which trial a free slot runs (FIFO when none is given).
// - The best trial is the one with the best metric after its last iteration. Trial-time is the seconds spent
//   inside trials' iterations, summed over trials.
// - With `dir`, the sweep's table is rewritten (atomically) at every change as dir/sweep.state and checkpoints
//   go to dir/trial-<id>.ckpt; at the end only the best `keep_checkpoints` trials' checkpoints stay. With
//   `resume`, a sweep interrupted (killed, crashed) continues from that state: finished trials are kept, trials
//   that were running continue from their last checkpoint (or start over without one).
// - A trial whose code throws or whose actor dies is retried from its last checkpoint up to `trial_retries`
//   times, then marked failed with its error; the sweep goes on.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "iogrid/actor.hpp"
#include "iogrid/bytes.hpp"
#include "iogrid/object_ref.hpp"
#include "iogrid/runtime.hpp"
#include "iogrid/tune/asha.hpp"
#include "iogrid/tune/fifo.hpp"
#include "iogrid/tune/scheduler.hpp"
#include "iogrid/tune/space.hpp"
#include "iogrid/tune/trial.hpp"

namespace iogrid::tune {

struct Resources {
  double num_cpus = 1;
  double num_gpus = 0;  // a fraction shares a GPU
};

struct Config {
  Objective objective;              // metric and mode ("max"/"min")
  Search search = Search::grid;
  int samples = 1;                  // grid: repeats of every combination; random: trials
  std::uint64_t seed = 1;           // sampling
  int max_iterations = 10;          // per trial
  std::shared_ptr<const Scheduler> scheduler;  // nullptr: FIFO (every trial runs max_iterations)
  int max_concurrent = 0;           // 0: the cluster's CPUs / resources.num_cpus (GPUs likewise when asked for)
  Resources resources;
  std::string dir;                  // state and checkpoints on disk (needed to resume); empty: memory only
  bool resume = false;              // continue the sweep saved in dir (an error when there is none)
  int keep_checkpoints = 3;         // the best trials' checkpoint files kept in dir at the end
  int trial_retries = 1;
  std::string name = "sweep";
  bool progress = true;             // a line per trial event on stderr
};

struct Result {
  std::vector<Trial> trials;        // by id
  Objective objective;
  int best = -1;                    // index of the best trial (-1 when none reported)
  Bytes best_checkpoint;            // the best trial's newest checkpoint
  double trial_seconds = 0;         // trial-time, summed over trials
  double wall_seconds = 0;
  int iterations = 0;               // iterations run, summed over trials

  const Trial& best_trial() const;  // throws iogrid::Error when no trial reported
  const Params& best_params() const { return best_trial().params; }
  double best_metric() const { return best_trial().metric(objective.metric); }
  // Every trial, best first: id, parameters, iterations, metric, trial-time, status.
  std::string table(std::size_t max_rows = 0) const;
  // Every trial as CSV, by id: trial, the parameters, status, iterations, seconds, then the metric after each
  // iteration (<metric>_1, <metric>_2, ...). Throws iogrid::Error when the file cannot be written.
  void write_csv(const std::string& path) const;
};

namespace detail {

struct NoShared {
  int unused = 0;
  IOGRID_SERIALIZE(unused)
};
template <class T, class = void>
struct shared_of {
  using type = NoShared;
};
template <class T>
struct shared_of<T, std::void_t<typename T::Shared>> {
  using type = typename T::Shared;
};

struct StepResult {
  Metrics metrics;
  double seconds = 0;
  IOGRID_SERIALIZE(metrics, seconds)
};

// The actor a trial lives in. Its methods register themselves (by the trainable's type) in every process that
// instantiates run<T>.
template <class T>
class TrialActor {
 public:
  using S = typename shared_of<T>::type;
  TrialActor(Params p, ObjectRef<S> shared, ObjectRef<Bytes> checkpoint) {
    if constexpr (std::is_same_v<S, NoShared>) {
      (void)shared;
      trial_ = std::make_unique<T>(p);
    } else {
      trial_ = std::make_unique<T>(p, get(shared));
    }
    auto ck = get(checkpoint);
    if (!ck.empty()) trial_->restore(ck);
  }
  StepResult step() {
    const auto t0 = std::chrono::steady_clock::now();
    StepResult r;
    r.metrics = trial_->step();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }
  Bytes save() { return trial_->save(); }

  static inline const ::iogrid::core::FunctionInfo& step_fn =
      ::iogrid::detail::make_remote((std::string("tune:") + typeid(T).name() + ":step").c_str(), &TrialActor::step);
  static inline const ::iogrid::core::FunctionInfo& save_fn =
      ::iogrid::detail::make_remote((std::string("tune:") + typeid(T).name() + ":save").c_str(), &TrialActor::save);

 private:
  std::unique_ptr<T> trial_;
};

// One trial's actor, seen by the sweep driver without its type.
class TrialHandle {
 public:
  virtual ~TrialHandle() = default;
  virtual ObjectRef<StepResult> step() = 0;
  virtual ObjectRef<Bytes> save() = 0;
  virtual void kill() = 0;
};
// Starts an actor for a trial (named `name`), restored from `checkpoint` (empty Bytes: a fresh start).
using TrialStarter =
    std::function<std::unique_ptr<TrialHandle>(const Params&, const ObjectRef<Bytes>& checkpoint, const std::string& name)>;

template <class T>
class TypedTrialHandle final : public TrialHandle {
 public:
  explicit TypedTrialHandle(ActorHandle<TrialActor<T>> a) : a_(std::move(a)) {}
  ObjectRef<StepResult> step() override { return a_.call(&TrialActor<T>::step).remote(); }
  ObjectRef<Bytes> save() override { return a_.call(&TrialActor<T>::save).remote(); }
  void kill() override { a_.kill(); }

 private:
  ActorHandle<TrialActor<T>> a_;
};

Result run_sweep(const Space& space, const Config& config, const TrialStarter& start);

}  // namespace detail

// Runs the sweep to the end and returns every trial. Throws iogrid::Error for an empty space, a bad config, a
// missing or mismatched saved sweep on resume; a failing trial does not throw (it is marked failed).
template <class T>
Result run(const Space& space, const Config& config, const typename detail::shared_of<T>::type& shared = {}) {
  using A = detail::TrialActor<T>;
  (void)&A::step_fn;
  (void)&A::save_fn;
  auto shared_ref = put(shared);
  const Resources res = config.resources;
  return detail::run_sweep(space, config, [shared_ref, res](const Params& p, const ObjectRef<Bytes>& checkpoint,
                                                            const std::string& name) {
    auto h = actor<A>(p, shared_ref, checkpoint)
                 .options({.num_cpus = res.num_cpus, .num_gpus = res.num_gpus, .name = name})
                 .remote();
    return std::unique_ptr<detail::TrialHandle>(new detail::TypedTrialHandle<T>(std::move(h)));
  });
}

}  // namespace iogrid::tune
