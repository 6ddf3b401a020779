// Sweeps: search spaces, the FIFO and ASHA schedulers on hand-built tables, and whole sweeps on the embedded
// cluster with a synthetic trainable (concurrency limit, fractional GPUs, early stopping, failures, checkpoints,
// resume), the bundled MLP trainable, and an interrupted (kill -9) example sweep resumed from its folder.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iogrid/iogrid.hpp>
#include <iogrid/tune.hpp>
#include <iogrid/tune/mlp_trial.hpp>
#include <set>
#include <thread>

#include <signal.h>

#include "runtime/cluster/child_process.hpp"
#include "../sdk/cluster_fixture.hpp"
#include "synthetic.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace tune = iogrid::tune;

namespace {

fs::path scratch(const std::string& name) {
  auto d = fs::temp_directory_path() / ("iogrid-tune-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

// A trial whose metric after i iterations is quality(x) * (1 - 0.5^i), quality peaking at x = 0.6: the order of
// trials is the same at every iteration. x < 0 throws on every step. Counts what it does in globals (the
// embedded cluster runs actors in this process).
std::atomic<int> g_running{0}, g_peak{0}, g_steps{0}, g_restores{0};
std::atomic<double> g_gpu_fraction{0};

struct Curve {
  explicit Curve(const tune::Params& p) : x(p.number("x")) {
    auto gpus = iogrid::current_gpus();
    if (!gpus.empty()) g_gpu_fraction = gpus.front().fraction;
  }
  tune::Metrics step() {
    const int now = ++g_running;
    for (int p = g_peak; now > p && !g_peak.compare_exchange_weak(p, now);) {
    }
    std::this_thread::sleep_for(15ms);
    --g_running;
    ++g_steps;
    if (x < 0) throw iogrid::Error("bad x " + std::to_string(x));
    ++it;
    return {{"accuracy", (1 - (x - 0.6) * (x - 0.6)) * (1 - std::pow(0.5, it))}, {"iteration", it}};
  }
  iogrid::Bytes save() { return iogrid::Bytes(&it, sizeof it); }
  void restore(const iogrid::Bytes& b) {
    std::memcpy(&it, b.data(), sizeof it);
    ++g_restores;
  }
  double x;
  int it = 0;
};

void reset_counters() {
  g_running = 0;
  g_peak = 0;
  g_steps = 0;
  g_restores = 0;
  g_gpu_fraction = 0;
}

std::vector<double> steps_of(int n) {  // n values evenly over [0, 1]
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(double(i) / double(n - 1));
  return v;
}

tune::Trial trial(int id, tune::TrialStatus s, std::vector<double> acc) {
  tune::Trial t;
  t.id = id;
  t.status = s;
  for (double a : acc) t.history.push_back({{"accuracy", a}});
  t.checkpoint_iteration = int(acc.size());
  return t;
}

}  // namespace

TEST_CASE("search spaces: grid products, seeded sampling within range, and bad spaces refused", "[tune]") {
  tune::Space s;
  s.add("lr", tune::grid({0.1, 0.01})).add("opt", tune::grid({"sgd", "adam", "x"})).add("u", tune::uniform(2, 3));
  CHECK(s.grid_size() == 6);
  auto g = s.generate(tune::Search::grid, 2, 5);
  REQUIRE(g.size() == 12);
  CHECK(g[0].number("lr") == 0.1);
  CHECK(g[0].text("opt") == "sgd");
  CHECK(g[1].text("opt") == "sgd");  // each combination repeated `samples` times
  CHECK(g[2].text("opt") == "adam"); // the last grid parameter varies fastest
  CHECK(g[6].number("lr") == 0.01);
  for (const auto& p : g) CHECK((p.number("u") >= 2 && p.number("u") < 3));
  CHECK(g[0].number("u") != g[1].number("u"));
  CHECK(s.generate(tune::Search::grid, 2, 5) == g);  // reproducible
  CHECK(!(s.generate(tune::Search::grid, 2, 6) == g));

  tune::Space r;
  r.add("lr", tune::log_uniform(1e-4, 1e-1)).add("n", tune::integer(1, 3)).add("c", tune::choice({"a", "b"}))
      .add("g", tune::grid({1, 2}));
  auto rs = r.generate(tune::Search::random, 300, 1);
  REQUIRE(rs.size() == 300);
  std::set<std::int64_t> ns;
  int low_decade = 0;
  for (const auto& p : rs) {
    CHECK((p.number("lr") >= 1e-4 && p.number("lr") < 1e-1));
    low_decade += p.number("lr") < 1e-3;
    ns.insert(p.integer("n"));
    CHECK((p.text("c") == "a" || p.text("c") == "b"));
  }
  CHECK(ns == std::set<std::int64_t>{1, 2, 3});  // both ends included
  CHECK(low_decade > 60);                         // log-uniform: about a third per decade, not 1%
  CHECK(low_decade < 140);

  CHECK_THROWS_WITH(tune::Space().add("a", tune::grid(std::vector<double>{})), Catch::Contains("at least one value"));
  CHECK_THROWS_WITH(tune::Space().add("a", tune::uniform(1, 1)), Catch::Contains("low < high"));
  CHECK_THROWS_WITH(tune::Space().add("a", tune::log_uniform(0, 1)), Catch::Contains("0 < low < high"));
  CHECK_THROWS_WITH(tune::Space().add("a", tune::integer(3, 2)), Catch::Contains("low <= high"));
  CHECK_THROWS_WITH(tune::Space().add("a", tune::uniform(0, 1)).add("a", tune::uniform(0, 1)), Catch::Contains("twice"));
  CHECK_THROWS_WITH(tune::Space().generate(tune::Search::grid, 1, 1), Catch::Contains("empty"));
  CHECK_THROWS_WITH(g[0].number("nope"), Catch::Contains("no parameter 'nope'"));
  CHECK_THROWS_WITH(g[0].number("opt"), Catch::Contains("not a number"));
  CHECK(g[0].str() == "lr=0.1 opt=sgd u=" + g[0].values["u"].str());
}

TEST_CASE("FIFO runs trials in order to the end, and ASHA promotes the top 1/eta of each rung, then starts new trials", "[tune]") {
  using S = tune::TrialStatus;
  const tune::Objective max{"accuracy", "max"}, min{"accuracy", "min"};
  std::vector<tune::Trial> t{trial(0, S::done, {0.5}), trial(1, S::running, {}), trial(2, S::pending, {})};
  auto d = tune::FifoScheduler().next(t, max, 9);
  REQUIRE(d);
  CHECK(d->trial == 2);
  CHECK(d->until == 9);

  tune::AshaScheduler asha({.grace = 1, .eta = 3});
  CHECK(asha.rungs(9) == std::vector<int>{1, 3});
  CHECK(asha.rungs(10) == std::vector<int>{1, 3, 9});
  CHECK_THROWS(tune::AshaScheduler({.grace = 0, .eta = 3}));
  CHECK_THROWS(tune::AshaScheduler({.grace = 1, .eta = 1}));
  // Six trials at rung 1: the best two may go on; trial 4 (0.9) is the best paused one.
  std::vector<tune::Trial> r;
  const double acc[] = {0.1, 0.5, 0.3, 0.2, 0.9, 0.4};
  for (int i = 0; i < 6; ++i) r.push_back(trial(i, S::paused, {acc[i]}));
  r.push_back(trial(6, S::pending, {}));  // the only pending one, whatever the order
  d = asha.next(r, max, 9);
  REQUIRE(d);
  CHECK(d->trial == 4);
  CHECK(d->until == 3);
  r[4].status = S::running;
  d = asha.next(r, max, 9);
  REQUIRE(d);
  CHECK(d->trial == 1);  // second best
  r[1].status = S::running;
  d = asha.next(r, max, 9);
  REQUIRE(d);
  CHECK(d->trial == 6);  // no promotion left: a new trial, to the first rung
  CHECK(d->until == 1);
  r[6].status = S::running;
  CHECK(!asha.next(r, max, 9));  // nothing to do until a result arrives
  // Minimising, the lowest go on.
  r[4].status = S::paused;
  r[1].status = S::paused;
  d = asha.next(r, min, 9);
  REQUIRE(d);
  CHECK(d->trial == 0);
  // New trials start in an order scrambled from the seed (not the grid's), the same every time.
  auto order = [](std::uint64_t seed) {
    std::vector<tune::Trial> p;
    for (int i = 0; i < 8; ++i) p.push_back(trial(i, S::pending, {}));
    std::vector<int> o;
    tune::AshaScheduler a({.grace = 1, .eta = 3, .seed = seed});
    while (auto d = a.next(p, {"accuracy", "max"}, 9)) {
      o.push_back(d->trial);
      p[std::size_t(d->trial)].status = S::running;
    }
    return o;
  };
  auto o1 = order(1);
  CHECK(o1.size() == 8);
  CHECK(std::set<int>(o1.begin(), o1.end()).size() == 8);
  CHECK(o1 != std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(order(1) == o1);
  CHECK(order(2) != o1);
  // A NaN (diverged) never goes on, and a trial paused between rungs continues first.
  std::vector<tune::Trial> n{trial(0, S::paused, {std::nan("")}), trial(1, S::paused, {0.2}), trial(2, S::paused, {0.1}),
                             trial(3, S::paused, {0.3, 0.4})};
  d = asha.next(n, max, 9);
  REQUIRE(d);
  CHECK(d->trial == 3);
  CHECK(d->until == 3);
  n[3].status = S::running;
  // Rung 1 has four results, so one goes on: trial 3 (0.3), which runs already; the NaN never does.
  CHECK(!asha.next(n, max, 9));
}

TEST_CASE("a grid sweep runs every trial to the end, no more at once than the limit, and finds the best", "[tune]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 8}}});
  reset_counters();
  tune::Space s;
  s.add("x", tune::grid(steps_of(11)));
  tune::Config c;
  c.max_iterations = 4;
  c.max_concurrent = 3;
  c.progress = false;
  auto r = tune::run<Curve>(s, c);
  REQUIRE(r.trials.size() == 11);
  for (const auto& t : r.trials) {
    CHECK(t.status == tune::TrialStatus::done);
    CHECK(t.iterations() == 4);
    CHECK(t.seconds > 0.04);
  }
  CHECK(r.iterations == 44);
  CHECK(g_steps == 44);
  CHECK(g_peak <= 3);
  CHECK(g_peak >= 2);
  CHECK(r.best_params().number("x") == Approx(0.6));
  CHECK(r.best_metric() == Approx((1 - std::pow(0.5, 4))));
  CHECK(r.trial_seconds >= 44 * 0.015);
  auto table = r.table();
  CHECK(table.rfind("trial  x", 0) == 0);
  CHECK(table.find("\n6 ") != std::string::npos);  // the best (trial 6, x = 0.6) on the first row
  CHECK(table.find("\n6 ") == table.find('\n'));
  CHECK(!r.best_checkpoint.empty());
}

TEST_CASE("trials hold a fraction of a GPU, the default concurrency follows from the cluster's GPUs", "[tune]") {
  Cluster cl({.nodes = {{.name = "g", .num_cpus = 8, .gpus = {{.model = "A100", .memory_gib = 80, .count = 1}}}}});
  reset_counters();
  tune::Space s;
  s.add("x", tune::grid({0.1, 0.2, 0.3, 0.4}));
  tune::Config c;
  c.max_iterations = 3;
  c.resources = {.num_cpus = 0, .num_gpus = 0.5};
  c.progress = false;
  auto r = tune::run<Curve>(s, c);
  CHECK(g_gpu_fraction == Approx(0.5));
  CHECK(g_peak == 2);  // 1 GPU / 0.5
  CHECK(r.iterations == 12);
}

TEST_CASE("ASHA stops the worst trials early, runs a fraction of the grid's iterations, and finds the best", "[tune]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 4}}});
  reset_counters();
  tune::Space s;
  s.add("x", tune::grid(steps_of(27)));
  tune::Config c;
  c.max_iterations = 9;
  c.max_concurrent = 2;
  c.resources.num_cpus = 1;
  c.progress = false;
  c.scheduler = std::make_shared<tune::AshaScheduler>(tune::AshaOptions{.grace = 1, .eta = 3});
  auto r = tune::run<Curve>(s, c);
  int done = 0, stopped = 0;
  for (const auto& t : r.trials) {
    done += t.status == tune::TrialStatus::done;
    stopped += t.status == tune::TrialStatus::stopped;
    CHECK((t.iterations() == 1 || t.iterations() == 3 || t.iterations() == 9));
  }
  CHECK(done + stopped == 27);
  CHECK(done >= 3);
  CHECK(stopped >= 15);
  CHECK(r.iterations < 27 * 9 / 2);
  CHECK(std::abs(r.best_params().number("x") - 0.6) < 0.02);
  CHECK(r.trials[std::size_t(r.best)].status == tune::TrialStatus::done);
}

TEST_CASE("a failing trial is retried from its checkpoint, then marked failed with its error, and the sweep goes on", "[tune]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 2}}});
  reset_counters();
  tune::Space s;
  s.add("x", tune::grid({-1.0, 0.5, 0.6}));
  tune::Config c;
  c.max_iterations = 2;
  c.trial_retries = 2;
  c.progress = false;
  auto r = tune::run<Curve>(s, c);
  CHECK(r.trials[0].status == tune::TrialStatus::failed);
  CHECK(r.trials[0].failures == 3);
  CHECK_THAT(r.trials[0].error, Catch::Contains("bad x -1"));
  CHECK(r.trials[1].status == tune::TrialStatus::done);
  CHECK(r.trials[2].status == tune::TrialStatus::done);
  CHECK(r.best == 2);
}

TEST_CASE("a sweep folder keeps the state and the best checkpoints, resume continues it and refuses another space", "[tune]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 2}}});
  reset_counters();
  const auto dir = scratch("folder");
  tune::Space s;
  s.add("x", tune::grid({0.2, 0.4, 0.6, 0.8}));
  tune::Config c;
  c.max_iterations = 3;
  c.dir = dir.string();
  c.keep_checkpoints = 2;
  c.progress = false;
  auto r = tune::run<Curve>(s, c);
  CHECK(fs::exists(dir / "sweep.state"));
  std::set<std::string> kept;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".ckpt") kept.insert(e.path().filename().string());
  CHECK(kept == std::set<std::string>{"trial-1.ckpt", "trial-2.ckpt"});  // x = 0.6 and the tie-break of 0.4/0.8
  int it = 0;
  REQUIRE(r.best_checkpoint.size() == sizeof it);
  std::memcpy(&it, r.best_checkpoint.data(), sizeof it);
  CHECK(it == 3);

  CHECK_THROWS_WITH(tune::run<Curve>(s, c), Catch::Contains("already holds a sweep"));
  const int steps = g_steps;
  c.resume = true;
  auto again = tune::run<Curve>(s, c);  // finished: nothing runs again
  CHECK(g_steps == steps);
  CHECK(again.best == r.best);
  CHECK(again.best_metric() == r.best_metric());
  tune::Space other;
  other.add("x", tune::grid({0.2, 0.4, 0.6, 0.9}));
  CHECK_THROWS_WITH(tune::run<Curve>(other, c), Catch::Contains("another search space"));
  c.dir = scratch("empty").string();
  CHECK_THROWS_WITH(tune::run<Curve>(s, c), Catch::Contains("no sweep to resume"));
  c.dir.clear();
  CHECK_THROWS_WITH(tune::run<Curve>(s, c), Catch::Contains("needs the folder"));
  fs::remove_all(dir);
}

TEST_CASE("the MLP trainable learns, and a trial restored from its checkpoint continues exactly", "[tune]") {
  Cluster cl({.nodes = {{.name = "n", .num_cpus = 2}}});
  auto data = tune::mlp_trial_data(synthetic(1200, 32, 4, 1), synthetic(300, 32, 4, 2), 4);
  tune::Params p;
  p.values["lr"] = {.number = 0.05};
  p.values["hidden"] = {.number = 16};
  p.values["batch"] = {.number = 32};
  tune::MlpTrial a(p, data);
  a.step();
  auto ck = a.save();
  auto m2 = a.step();
  CHECK(m2["accuracy"] > 0.9);
  CHECK(m2["epoch"] == 2);
  tune::MlpTrial b(p, data);
  b.restore(ck);
  auto b2 = b.step();
  CHECK(b2["accuracy"] == m2["accuracy"]);
  CHECK(b2["loss"] == m2["loss"]);
  CHECK(tune::MlpTrial::checkpoint_of(ck).model.layers == std::vector<int>{32, 16, 8, 4});
  CHECK_THROWS_WITH(tune::MlpTrial::checkpoint_of(iogrid::Bytes(std::string_view("junk"))), Catch::Contains("damaged"));
  p.values["optimizer"] = {.text = "rmsprop", .is_text = true};
  CHECK_THROWS_WITH(tune::MlpTrial(p, data), Catch::Contains("sgd or adam"));

  tune::Space s;
  s.add("lr", tune::grid({0.01, 0.1})).add("hidden", tune::grid({16}));
  tune::Config c;
  c.max_iterations = 2;
  c.progress = false;
  auto r = tune::run<tune::MlpTrial>(s, c, data);
  CHECK(r.best_metric() > 0.9);
  CHECK(tune::MlpTrial::checkpoint_of(r.best_checkpoint).epoch == 2);
}

TEST_CASE("an example sweep killed with SIGKILL resumes from its folder and ends as an uninterrupted one", "[tune][process]") {
  const auto dir = scratch("kill");
  const std::vector<std::string> base{SWEEP_EXAMPLE_PATH, "--scheduler", "fifo", "--max-epochs", "2", "--limit", "6000",
                                      "--concurrent", "2"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  std::string full;
  {
    iogrid::runtime::cluster::ChildProcess p(base, {}, (fs::temp_directory_path() / ("iogrid-sweep-full-" + std::to_string(::getpid()))).string());
    REQUIRE(p.wait(120s) == 0);
    full = p.output();
  }
  auto best_line = [](const std::string& out) {
    auto at = out.find("best config:");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  REQUIRE(!best_line(full).empty());
  const auto log = (fs::temp_directory_path() / ("iogrid-sweep-kill-" + std::to_string(::getpid()))).string();
  {
    iogrid::runtime::cluster::ChildProcess p(with({"--dir", dir.string()}), {}, log);
    auto done_trials = [&] {
      int n = 0;
      for (std::size_t at = 0; (at = p.output().find(") done after", at)) != std::string::npos; ++at) ++n;
      return n;
    };
    REQUIRE(iogrid::runtime::cluster::eventually([&] { return done_trials() >= 4; }, 60s));
    REQUIRE(p.running());
    p.kill(SIGKILL);
  }
  iogrid::runtime::cluster::ChildProcess again(with({"--dir", dir.string(), "--resume"}), {}, log + "-resume");
  REQUIRE(again.wait(120s) == 0);
  const auto out = again.output();
  CHECK_THAT(out, Catch::Contains("resuming from"));
  CHECK_THAT(out, !Catch::Contains("resuming from " + (dir / "sweep.state").string() + ": 0 of"));
  CHECK(best_line(out) == best_line(full));
  fs::remove_all(dir);
}

TEST_CASE("a program that fails after init() and returns without shutdown() exits with its own status, cleanly", "[tune][process]") {
  // The example returns 1 from main() when the data is missing, leaving the runtime to stop at exit.
  iogrid::runtime::cluster::ChildProcess p({SWEEP_EXAMPLE_PATH}, {{"IOGRID_FASHION_MNIST", "/nonexistent"}},
                          (fs::temp_directory_path() / ("iogrid-sweep-exit-" + std::to_string(::getpid()))).string());
  CHECK(p.wait(60s) == 1);  // not 134 (abort in the runtime's teardown)
  CHECK_THAT(p.output(), Catch::Contains("Fashion-MNIST is not in /nonexistent"));
  CHECK_THAT(p.output(), !Catch::Contains("corrupted"));
}
