// The sweep driver: fills slots with the scheduler's decisions, collects iterations, checkpoints at pauses,
// keeps the state on disk for resume.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "iogrid/tune.hpp"
#include "iogrid/train/replica.hpp"
#include "iogrid/tune/sweep_state.hpp"

namespace iogrid::tune {

namespace fs = std::filesystem;

const Trial& Result::best_trial() const {
  if (best < 0 || std::size_t(best) >= trials.size()) throw Error("iogrid: no trial of the sweep reported a result");
  return trials[std::size_t(best)];
}

std::string Result::table(std::size_t max_rows) const {
  std::vector<std::size_t> order(trials.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  const auto& obj = objective;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return obj.better(trials[a].metric(obj.metric), trials[b].metric(obj.metric));
  });
  std::vector<std::string> names;
  if (!trials.empty())
    for (const auto& [k, _] : trials.front().params.values) names.push_back(k);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head{"trial"};
  head.insert(head.end(), names.begin(), names.end());
  for (const char* h : {"iters", obj.metric.c_str(), "seconds", "status"}) head.push_back(h);
  rows.push_back(head);
  for (std::size_t r = 0; r < order.size() && (max_rows == 0 || r < max_rows); ++r) {
    const auto& t = trials[order[r]];
    std::vector<std::string> row{std::to_string(t.id)};
    for (const auto& n : names) row.push_back(t.params.has(n) ? t.params.values.at(n).str() : "-");
    char m[32], sec[32];
    const double v = t.metric(obj.metric);
    std::snprintf(m, sizeof m, std::isnan(v) ? "-" : "%.4f", v);
    std::snprintf(sec, sizeof sec, "%.1f", t.seconds);
    row.push_back(std::to_string(t.iterations()));
    row.push_back(m);
    row.push_back(sec);
    row.push_back(to_string(t.status));
    rows.push_back(row);
  }
  std::vector<std::size_t> width(head.size(), 0);
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      out += row[c];
      if (c + 1 < row.size()) out += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out += '\n';
  }
  if (max_rows && order.size() > max_rows) out += "... " + std::to_string(order.size() - max_rows) + " more trials\n";
  return out;
}

void Result::write_csv(const std::string& path) const {
  std::ofstream f(path, std::ios::trunc);
  if (!f) throw Error("iogrid: cannot write " + path);
  std::vector<std::string> names;
  int most = 0;
  for (const auto& t : trials) most = std::max(most, t.iterations());
  if (!trials.empty())
    for (const auto& [k, _] : trials.front().params.values) names.push_back(k);
  auto quoted = [](const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  f << "trial";
  for (const auto& n : names) f << ',' << quoted(n);
  f << ",status,iterations,seconds";
  for (int i = 1; i <= most; ++i) f << ',' << quoted(objective.metric) << '_' << i;
  f << '\n';
  for (const auto& t : trials) {
    f << t.id;
    for (const auto& n : names) f << ',' << (t.params.has(n) ? quoted(t.params.values.at(n).str()) : "");
    f << ',' << to_string(t.status) << ',' << t.iterations() << ',' << t.seconds;
    for (int i = 1; i <= most; ++i) {
      f << ',';
      if (i <= t.iterations() && !std::isnan(t.metric(objective.metric, i))) f << t.metric(objective.metric, i);
    }
    f << '\n';
  }
  if (!f) throw Error("iogrid: cannot write " + path);
}

namespace {
constexpr char kStateMagic[8] = {'I', 'O', 'G', 'R', 'I', 'D', 'S', 'W'};
}  // namespace

void save_sweep_state(const std::string& path, const SweepState& st) { train::save_value(path, kStateMagic, st, "sweep state"); }

SweepState load_sweep_state(const std::string& path) {
  auto st = train::load_value<SweepState>(path, kStateMagic, "sweep state");
  if (st.version != 1)
    throw Error("iogrid: sweep state " + path + " has version " + std::to_string(st.version) + "; this iogrid reads version 1");
  auto damaged = [&](const std::string& why) { return Error("iogrid: sweep state " + path + " is damaged (" + why + ")"); };
  for (std::size_t i = 0; i < st.trials.size(); ++i) {
    const auto& t = st.trials[i];
    const auto which = "trial " + std::to_string(i);
    if (t.id != int(i)) throw damaged(which + " has id " + std::to_string(t.id));
    if (std::uint8_t(t.status) > std::uint8_t(TrialStatus::failed)) throw damaged(which + " has an unknown status");
    if (t.checkpoint_iteration < 0) throw damaged(which + " has a negative checkpoint iteration");
  }
  return st;
}

namespace detail {

namespace {

constexpr char kTrialMagic[8] = {'I', 'O', 'G', 'R', 'I', 'D', 'T', 'C'};  // a trial's checkpoint file

// The trial with the best metric after its last iteration (the first such on ties), -1 when none reported.
int best_of(const std::vector<Trial>& trials, const Objective& o) {
  int best = -1;
  for (std::size_t i = 0; i < trials.size(); ++i)
    if (trials[i].iterations() > 0 &&
        (best < 0 || o.better(trials[i].metric(o.metric), trials[std::size_t(best)].metric(o.metric))))
      best = int(i);
  return best;
}

int default_slots(const Resources& r) {
  double cpus = 0, gpus = 0;
  for (const auto& n : nodes()) {
    cpus += n.num_cpus;
    for (const auto& g : n.gpus) gpus += g.count > 0 ? g.count : 1;
  }
  int slots = 1 << 20;
  if (r.num_cpus > 0) slots = std::min(slots, int(std::floor(cpus / r.num_cpus + 1e-9)));
  if (r.num_gpus > 0) slots = std::min(slots, int(std::floor(gpus / r.num_gpus + 1e-9)));
  if (slots == 1 << 20) slots = int(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, slots);
}

struct Slot {
  int trial = -1;  // whose actor this slot holds (-1: none)
  std::unique_ptr<TrialHandle> actor;
  bool busy = false;
  int until = 0;
  ObjectRef<StepResult> pending;
};

class Driver {
 public:
  Driver(const Space& space, const Config& c, const TrialStarter& start) : c_(c), start_(start) {
    if (c.max_iterations < 1) throw Error("iogrid: a sweep needs max_iterations >= 1");
    if (c.objective.mode != "max" && c.objective.mode != "min")
      throw Error("iogrid: the sweep's mode must be \"max\" or \"min\", not \"" + c.objective.mode + "\"");
    if (c.objective.metric.empty()) throw Error("iogrid: the sweep needs a metric name");
    if (c.keep_checkpoints < 0 || c.trial_retries < 0 || c.max_concurrent < 0)
      throw Error("iogrid: keep_checkpoints, trial_retries and max_concurrent cannot be negative");
    if (c.resources.num_cpus < 0 || c.resources.num_gpus < 0) throw Error("iogrid: trial resources cannot be negative");
    if (!is_initialized()) throw Error("iogrid: call iogrid::init() before a sweep");
    sched_ = c.scheduler ? c.scheduler : std::make_shared<FifoScheduler>();
    const auto params = space.generate(c.search, c.samples, c.seed);
    if (!c.dir.empty()) {
      fs::create_directories(c.dir);
      state_path_ = fs::path(c.dir) / "sweep.state";
    }
    if (c.resume) {
      if (c.dir.empty()) throw Error("iogrid: resuming a sweep needs the folder it saved its state in (Config::dir)");
      if (!fs::exists(state_path_)) throw Error("iogrid: there is no sweep to resume in " + c.dir + " (no sweep.state)");
      auto st = load_sweep_state(state_path_.string());
      if (st.trials.size() != params.size() || st.max_iterations != c.max_iterations ||
          st.objective.metric != c.objective.metric || st.objective.mode != c.objective.mode)
        throw Error("iogrid: the sweep saved in " + c.dir + " was made with another configuration (" +
                    std::to_string(st.trials.size()) + " trials, " + std::to_string(st.max_iterations) +
                    " iterations, " + st.objective.mode + " " + st.objective.metric + ")");
      for (std::size_t i = 0; i < params.size(); ++i)
        if (!(st.trials[i].params == params[i]))
          throw Error("iogrid: the sweep saved in " + c.dir + " was made with another search space (trial " +
                      std::to_string(i) + ": " + st.trials[i].params.str() + " vs " + params[i].str() + ")");
      trials_ = std::move(st.trials);
      int resumed = 0;
      for (auto& t : trials_)
        if (t.status == TrialStatus::running) {
          rewind(t);
          ++resumed;
        }
      if (c.progress) {
        int finished = 0;
        for (const auto& t : trials_) finished += t.status == TrialStatus::done || t.status == TrialStatus::failed;
        std::cerr << "[" << c.name << "] resuming from " << state_path_.string() << ": " << finished << " of "
                  << trials_.size() << " trials finished, " << resumed << " interrupted trials continue from their checkpoints\n";
      }
    } else {
      if (!state_path_.empty() && fs::exists(state_path_))
        throw Error("iogrid: " + c.dir + " already holds a sweep: resume it (Config::resume) or use another folder");
      for (std::size_t i = 0; i < params.size(); ++i) {
        Trial t;
        t.id = int(i);
        t.params = params[i];
        trials_.push_back(std::move(t));
      }
    }
    slots_.resize(std::size_t(c.max_concurrent ? c.max_concurrent : default_slots(c.resources)));
    empty_ = put(Bytes());
  }

  Result run() {
    const auto t0 = std::chrono::steady_clock::now();
    save_state();
    if (c_.progress)
      std::cerr << "[" << c_.name << "] " << trials_.size() << " trials, up to " << c_.max_iterations
                << " iterations each, " << slots_.size() << " at a time, scheduler " << sched_->name() << "\n";
    while (true) {
      fill_slots();
      std::vector<ObjectRef<StepResult>> refs;
      std::vector<std::size_t> which;
      for (std::size_t s = 0; s < slots_.size(); ++s)
        if (slots_[s].busy) {
          refs.push_back(slots_[s].pending);
          which.push_back(s);
        }
      if (refs.empty()) break;
      auto ready = wait(refs, 1);
      for (std::size_t k = 0; k < refs.size(); ++k)
        if (std::find(ready.ready.begin(), ready.ready.end(), refs[k]) != ready.ready.end()) collect(slots_[which[k]]);
    }
    for (auto& s : slots_) release(s);
    for (auto& t : trials_)
      if (t.status == TrialStatus::paused) t.status = TrialStatus::stopped;
    Result r;
    r.objective = c_.objective;
    for (const auto& t : trials_) {
      r.trial_seconds += t.seconds;
      r.iterations += t.iterations();
    }
    r.best = best_of(trials_, c_.objective);
    if (r.best >= 0) r.best_checkpoint = checkpoint_bytes(std::size_t(r.best));
    prune_checkpoints();
    save_state();
    r.trials = trials_;
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (c_.progress && r.best >= 0)
      std::cerr << "[" << c_.name << "] finished in " << fmt(r.wall_seconds) << " s (trial-time " << fmt(r.trial_seconds)
                << " s, " << r.iterations << " iterations): best trial " << r.best << " (" << trials_[std::size_t(r.best)].params.str()
                << ") " << c_.objective.metric << " " << fmt(r.best_metric(), 4) << "\n";
    return r;
  }

 private:
  static std::string fmt(double v, int digits = 1) {
    char b[32];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
  }

  // Back to the newest checkpoint: iterations after it are run again.
  void rewind(Trial& t) {
    if (t.checkpoint_iteration > 0 && t.checkpoint_iteration <= t.iterations()) {
      t.history.resize(std::size_t(t.checkpoint_iteration));
      t.status = t.checkpoint_iteration >= c_.max_iterations ? TrialStatus::done : TrialStatus::paused;
    } else {
      t.history.clear();
      t.checkpoint_iteration = 0;
      t.status = TrialStatus::pending;
    }
  }

  void fill_slots() {
    while (true) {
      auto free_slot = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy; });
      if (free_slot == slots_.end()) return;
      auto d = sched_->next(trials_, c_.objective, c_.max_iterations);
      if (!d) return;
      auto& t = trials_[std::size_t(d->trial)];
      // The trial's own actor, when a slot still holds it idle at the trial's checkpoint.
      auto own = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) { return !s.busy && s.trial == d->trial; });
      Slot* slot = nullptr;
      if (own != slots_.end() && t.checkpoint_iteration == t.iterations()) {
        slot = &*own;
      } else {
        auto empty = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy && s.trial < 0; });
        slot = empty != slots_.end() ? &*empty : &*free_slot;
        release(*slot);
        rewind(t);
        slot->trial = d->trial;
        const auto name = c_.name + "/trial-" + std::to_string(t.id);
        slot->actor = start_(t.params, t.checkpoint_iteration > 0 ? checkpoint_ref(std::size_t(d->trial)) : empty_, name);
      }
      t.status = TrialStatus::running;
      slot->busy = true;
      slot->until = d->until;
      slot->pending = slot->actor->step();
      save_state();
    }
  }

  void release(Slot& s) {
    if (s.actor) s.actor->kill();
    s.actor.reset();
    s.trial = -1;
    s.busy = false;
  }

  void collect(Slot& s) {
    auto& t = trials_[std::size_t(s.trial)];
    try {
      auto r = get(s.pending);
      t.history.push_back(std::move(r.metrics));
      t.seconds += r.seconds;
      if (t.iterations() < s.until) {
        s.pending = s.actor->step();
        save_state();
        return;
      }
      auto ck = s.actor->save();
      auto bytes = get(ck);
      checkpoints_[std::size_t(s.trial)] = ck;
      t.checkpoint_iteration = t.iterations();
      if (!c_.dir.empty()) {
        const auto path = fs::path(c_.dir) / ("trial-" + std::to_string(t.id) + ".ckpt");
        train::write_file(path.string(), kTrialMagic, bytes.data(), bytes.size(), "trial checkpoint");
        t.checkpoint_path = path.string();
      }
      t.status = t.iterations() >= c_.max_iterations ? TrialStatus::done : TrialStatus::paused;
      s.busy = false;  // the actor stays, idle, in case the trial is promoted next
      report(t);
    } catch (const Error& e) {
      ++t.failures;
      t.error = e.what();
      release(s);
      if (t.failures > c_.trial_retries) {
        t.status = TrialStatus::failed;
      } else {
        rewind(t);
      }
      if (c_.progress)
        std::cerr << "[" << c_.name << "] trial " << t.id << " failed (" << e.what() << ")"
                  << (t.status == TrialStatus::failed ? "; no retries left" : "; retrying from its last checkpoint") << "\n";
    }
    save_state();
  }

  void report(const Trial& t) {
    if (!c_.progress) return;
    int finished = 0;
    for (const auto& x : trials_) finished += x.status == TrialStatus::done;
    const int best = best_of(trials_, c_.objective);
    std::cerr << "[" << c_.name << "] trial " << t.id << " (" << t.params.str() << ") "
              << (t.status == TrialStatus::done ? "done" : "paused") << " after " << t.iterations() << " iterations: "
              << c_.objective.metric << " " << fmt(t.metric(c_.objective.metric), 4) << "   [" << finished << "/"
              << trials_.size() << " done, best so far: trial " << best << "]\n";
  }

  ObjectRef<Bytes> checkpoint_ref(std::size_t i) {
    if (auto it = checkpoints_.find(i); it != checkpoints_.end()) return it->second;
    const auto& path = trials_[i].checkpoint_path;  // a resumed sweep's: from disk
    auto buf = train::read_file(path, kTrialMagic, "trial checkpoint");
    auto ref = put(Bytes(buf->data(), buf->size()));
    checkpoints_[i] = ref;
    return ref;
  }

  Bytes checkpoint_bytes(std::size_t i) {
    if (trials_[i].checkpoint_iteration == 0) return {};
    try {
      return get(checkpoint_ref(i));
    } catch (const Error&) {
      return {};
    }
  }

  void prune_checkpoints() {
    if (c_.dir.empty()) return;
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < trials_.size(); ++i)
      if (!trials_[i].checkpoint_path.empty()) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return c_.objective.better(trials_[a].metric(c_.objective.metric), trials_[b].metric(c_.objective.metric));
    });
    for (std::size_t k = std::size_t(c_.keep_checkpoints); k < order.size(); ++k) {
      auto& t = trials_[order[k]];
      std::error_code ec;
      fs::remove(t.checkpoint_path, ec);
      t.checkpoint_path.clear();
    }
  }

  void save_state() {
    if (state_path_.empty()) return;
    SweepState st;
    st.name = c_.name;
    st.objective = c_.objective;
    st.max_iterations = c_.max_iterations;
    st.trials = trials_;
    save_sweep_state(state_path_.string(), st);
  }

  const Config& c_;
  const TrialStarter& start_;
  std::shared_ptr<const Scheduler> sched_;
  std::vector<Trial> trials_;
  std::vector<Slot> slots_;
  std::map<std::size_t, ObjectRef<Bytes>> checkpoints_;
  ObjectRef<Bytes> empty_;
  fs::path state_path_;
};

}  // namespace

Result run_sweep(const Space& space, const Config& config, const TrialStarter& start) {
  return Driver(space, config, start).run();
}

}  // namespace detail

}  // namespace iogrid::tune
