// bench market: the market's figures. The ledger's journal (runtime/head/journal.hpp): how fast a head appends
// entries, and how long `iogrid ledger verify` takes over a million of them (the chain, each entry's double
// entry, the signed checkpoints). A seeded market simulation on the real scheduler (below): the price
// controller (scheduler/pricing.hpp) after a supply shock, its volatility, what users pay against a fixed price
// at the same utilisation, how evenly providers earn, and whether shading an ask or a bid pays. Spot checks
// (scheduler/spot_check.hpp) on the embedded runtime: three honest providers and one wrong on 2% of its tasks,
// 5% of runs checked: the share of trials in which it is caught within 5,000 of its tasks, and the extra runs.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <random>
#include <string>
#include <unistd.h>

#include <iogrid/iogrid.hpp>

#include "bench/report.hpp"
#include "runtime/head/journal.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/ledger.hpp"
#include "scheduler/policy.hpp"
#include "scheduler/pricing.hpp"
#include "scheduler/scheduler.hpp"
#include "scheduler/spot_check.hpp"

namespace iogrid::bench {

namespace {

// ---- the market simulation: providers, users and the price controller on the real scheduler ----
// Seeded. Providers: nodes of 4 GPUs (two models), each asking its own price (its reserve), drawn around the
// model's base price. Users: jobs arrive every round (Poisson), each wanting 1-4 GPUs of one model for a
// geometric number of rounds, worth a value per GPU-hour to them (lognormal around the base) and picking a tier.
// Each round (one hour): jobs that ended free their GPUs; a waiting job whose value covers its tier's price
// asks the scheduler with its tier, each node carrying its market's posted price as the head sets it (only
// providers asking at most the tier's price get it: sched::market_ok; urgent first, spot last); jobs that waited
// 12 rounds leave; running jobs pay their tier's price for the hour (the price when they started: their quote)
// and their provider earns it; then the controller moves each market's price (scheduler/pricing.hpp), never
// below the market's lowest ask.
struct SimConfig {
  std::uint64_t seed = 1;
  int rounds = 300;
  int shock_round = 150;              // 30% of providers leave at once; -1: none
  double fixed_price_scale = 0;       // > 0: no controller, the price fixed at this x the model's base
  double provider_shading = 1.0;      // the probed providers' ask x this (their true reserve is unchanged)
  double user_shading = 1.0;          // the probed users' bids x this
  std::string policy = sched::kDefaultPolicy;
  bool lock_price = true;             // a job pays the price it started at (its quote); false: each hour's price
  std::size_t probed_provider = 3;    // the provider whose ask is shaded (provider_shading)
};

struct SimResult {
  std::vector<double> price, utilisation;  // the A100 market, per round
  double paid = 0, gpu_hours = 0;          // over the steady rounds (50..shock)
  std::vector<double> provider_earned, provider_offered;  // per provider: earnings; GPU-hours offered at or below the price
  double probed_provider_utility = 0, probed_user_utility = 0;
};

SimResult simulate(const SimConfig& c) {
  struct Model {
    std::string name;
    double base;
    int nodes;
    double arrivals;  // jobs per round
  };
  const std::vector<Model> models{{"A100", 1.2, 160, 34}, {"RTX4090", 0.5, 80, 17}};
  std::mt19937_64 rng(c.seed);
  sched::Scheduler s(sched::make_policy(c.policy, c.seed));
  struct Provider {
    std::uint32_t node;
    int model;
    double reserve;  // true
    bool probed;
  };
  std::vector<Provider> providers;
  std::lognormal_distribution<double> spread(0.0, 0.25);
  for (int m = 0; m < int(models.size()); ++m)
    for (int i = 0; i < models[m].nodes; ++i) {
      sched::Node n;
      n.name = models[m].name + "-" + std::to_string(i);
      n.total.cpus = 64 * sched::kOne;
      n.total.memory_mib = 256 * 1024;
      for (int g = 0; g < 4; ++g) n.gpus.push_back({models[m].name, 40 * 1024, 8.0, 0, true, sched::kOne});
      const double reserve = models[m].base * 0.8 * spread(rng);
      const bool probed = providers.size() == c.probed_provider;  // the one provider that may shade
      n.price_per_gpu_hour = reserve * (probed ? c.provider_shading : 1.0);
      n.available = n.total;
      providers.push_back({s.cluster().add(n), m, reserve, probed});
    }
  s.node_changed();
  sched::PriceBook book({}, 1.0);
  std::map<std::string, double> fixed;
  for (const auto& m : models) {
    const auto key = sched::PriceBook::market(m.name, "");
    fixed[key] = c.fixed_price_scale > 0 ? c.fixed_price_scale * m.base : m.base;
  }
  auto posted = [&](int m) {
    const auto key = sched::PriceBook::market(models[m].name, "");
    return c.fixed_price_scale > 0 ? fixed[key] : book.price(key);
  };
  for (const auto& m : models) book.set(sched::PriceBook::market(m.name, ""), m.base);  // every market starts at its base
  // The posted prices bind on the nodes, as the head's pricing round sets them.
  auto post_prices = [&] {
    for (const auto& p : providers) s.cluster().set_posted_price(p.node, posted(p.model));
    s.node_changed();
  };
  post_prices();
  struct Job {
    int model, gpus, rounds_left, waited = 0;
    double value;
    double price = 0;  // per GPU-hour, fixed when it starts (its quote)
    sched::Tier tier;
    bool probed;
    std::optional<sched::Allocation> alloc;
    std::size_t provider = 0;
  };
  std::vector<Job> jobs;  // waiting and running
  std::geometric_distribution<int> duration(1.0 / 8);
  std::lognormal_distribution<double> worth(0.0, 0.5);
  std::uniform_real_distribution<double> u01(0, 1);
  std::vector<std::size_t> provider_of_node(providers.size());
  for (std::size_t i = 0; i < providers.size(); ++i) provider_of_node[providers[i].node] = i;
  SimResult r;
  r.provider_earned.assign(providers.size(), 0);
  r.provider_offered.assign(providers.size(), 0);
  std::uint64_t job_counter = 0;
  for (int round = 0; round < c.rounds; ++round) {
    if (round == c.shock_round) {
      std::vector<std::size_t> order(providers.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      for (std::size_t k = 0; k < order.size() * 3 / 10; ++k) s.cluster().set_alive(providers[order[k]].node, false);
      for (auto& j : jobs)  // their work is lost and waits again
        if (j.alloc && !s.cluster().node(j.alloc->node).alive) {
          s.forget("sim", *j.alloc);
          j.alloc.reset();
        }
      s.node_changed();
    }
    // Ended jobs free their GPUs.
    for (auto& j : jobs)
      if (j.alloc && --j.rounds_left <= 0) {
        s.release("sim", *j.alloc);
        j.alloc.reset();
        j.gpus = 0;  // done
      }
    jobs.erase(std::remove_if(jobs.begin(), jobs.end(), [](const Job& j) { return j.gpus == 0; }), jobs.end());
    // Arrivals.
    for (int m = 0; m < int(models.size()); ++m) {
      std::poisson_distribution<int> arrivals(models[m].arrivals);
      for (int k = arrivals(rng); k > 0; --k) {
        Job j;
        j.model = m;
        const double g = u01(rng);
        j.gpus = g < 0.5 ? 1 : g < 0.8 ? 2 : g < 0.95 ? 3 : 4;
        j.rounds_left = 1 + duration(rng);
        j.value = models[m].base * worth(rng);
        const double t = u01(rng);
        j.tier = t < 0.3 ? sched::Tier::spot : t < 0.9 ? sched::Tier::standard : sched::Tier::urgent;
        j.probed = (job_counter++ % 100) == 7;  // one job in a hundred: a user who may shade its bids
        jobs.push_back(j);
      }
    }
    // Placement: urgent first, spot last, then by arrival.
    std::vector<Job*> waiting;
    for (auto& j : jobs)
      if (!j.alloc) waiting.push_back(&j);
    std::stable_sort(waiting.begin(), waiting.end(), [](const Job* a, const Job* b) {
      return sched::tier_rule(a->tier).priority > sched::tier_rule(b->tier).priority;
    });
    std::vector<double> queued(models.size(), 0);
    for (auto* j : waiting) {
      const double p = posted(j->model);
      const double bid = j->value * (j->probed ? c.user_shading : 1.0);
      if (bid < p * sched::tier_rule(j->tier).multiplier) {
        ++j->waited;
        continue;
      }
      sched::ResourceRequest req;
      req.cpus = sched::kOne;
      req.gpus = j->gpus * sched::kOne;
      req.gpu_models = {models[j->model].name};
      req.tier = j->tier;
      auto d = s.submit_or_place("sim", req, sched::tier_rule(j->tier).priority);
      if (const auto* g = d.mine()) {
        j->alloc = g->allocations.front();
        j->provider = provider_of_node[j->alloc->node];
        j->price = sched::pay_price(s.cluster().node(j->alloc->node), req);
      } else {
        s.cancel(d.ticket);
        // Demand that moves the price: standard and urgent work (spot takes what is left; pricing.hpp).
        if (j->tier != sched::Tier::spot) queued[std::size_t(j->model)] += j->gpus;
        ++j->waited;
      }
      for (const auto& g : d.grants)  // nothing else waits in the scheduler's queue: only this job's grant
        if (g.ticket != d.ticket) throw std::logic_error("market simulation: an unexpected grant");
    }
    jobs.erase(std::remove_if(jobs.begin(), jobs.end(), [](const Job& j) { return !j.alloc && j.waited > 12; }), jobs.end());
    // The hour's payments and each market's figures.
    std::map<std::string, sched::MarketSample> samples;
    for (int m = 0; m < int(models.size()); ++m) samples[sched::PriceBook::market(models[m].name, "")].queued = queued[std::size_t(m)];
    // Capacity: the GPUs of live providers asking at most the price, and those still busy with work they took
    // at an earlier price.
    std::vector<double> busy(providers.size(), 0);
    for (const auto& j : jobs)
      if (j.alloc) busy[j.provider] += j.gpus;
    for (std::size_t i = 0; i < providers.size(); ++i) {
      const auto& n = s.cluster().node(providers[i].node);
      if (!n.alive) continue;
      auto& lowest = samples[sched::PriceBook::market(models[std::size_t(providers[i].model)].name, "")].min_ask;
      if (lowest == 0 || n.price_per_gpu_hour < lowest) lowest = n.price_per_gpu_hour;
      const bool offered = n.price_per_gpu_hour <= posted(providers[i].model);
      samples[sched::PriceBook::market(models[std::size_t(providers[i].model)].name, "")].capacity += offered ? 4 : busy[i];
      r.provider_offered[i] += offered ? 4 : busy[i];
    }
    for (const auto& j : jobs) {
      if (!j.alloc) continue;
      const double price = c.lock_price ? j.price : posted(j.model) * sched::tier_rule(j.tier).multiplier;
      samples[sched::PriceBook::market(models[std::size_t(j.model)].name, "")].used += j.gpus;
      r.provider_earned[j.provider] += price * j.gpus;
      if (providers[j.provider].probed) r.probed_provider_utility += (price - providers[j.provider].reserve) * j.gpus;
      if (j.probed) r.probed_user_utility += (j.value - price) * j.gpus;
      if (round >= 50 && round < (c.shock_round >= 0 ? c.shock_round : c.rounds) && j.model == 0) {
        r.paid += price * j.gpus;
        r.gpu_hours += j.gpus;
      }
    }
    const auto a100 = sched::PriceBook::market("A100", "");
    r.price.push_back(posted(0));
    r.utilisation.push_back(sched::utilisation(samples[a100]));
    if (c.fixed_price_scale <= 0) {
      book.round(samples, round * 3600000LL);
      post_prices();
    }
  }
  return r;
}

// ---- spot checks: a provider wrong on a share of its tasks, on the real runtime ----
// The cheater is wrong on kWrongPerMillion of its tasks (a fixed choice per argument: the work it skips); every
// argument is used once, so each task is a fresh draw.
constexpr std::uint64_t kWrongPerMillion = 20000;  // 2%
std::int64_t market_spot_work(std::uint64_t x) {
  const auto right = static_cast<std::int64_t>(x % 1000003) * 3 + 1;
  if (iogrid::current_node() == "cheater" && sched::splitmix64(x) % 1000000 < kWrongPerMillion) return right + 1;
  return right;
}
IOGRID_REMOTE(market_spot_work);

struct CheckFigures {
  double caught_share = 0;  // trials caught within `within` of the cheater's tasks
  double overhead = 0;      // extra runs per task that asked for checks
  std::uint64_t trials = 0, tasks = 0;
};

// `trials` trials, each the cheater's tasks from the end of the previous trial until it is caught or `within`
// of them ran (in batches; a catch ends the trial at its batch, whose other tasks count for neither trial).
CheckFigures measure_checks(std::uint64_t trials, std::uint64_t within, double fraction, std::uint64_t seed) {
  iogrid::InitOptions init;
  for (const char* name : {"honest-1", "honest-2", "honest-3", "cheater"}) init.nodes.push_back({.name = name, .num_cpus = 2});
  init.verify_seed = seed;
  iogrid::init(init);
  struct Stop {
    ~Stop() { iogrid::shutdown(); }
  } stop;
  const std::uint64_t batch = 500;
  std::uint64_t next = seed << 32, caught = 0, tasks = 0;
  for (std::uint64_t t = 0; t < trials; ++t) {
    const auto settled_before = iogrid::spot_checks().settled;
    bool hit = false;
    for (std::uint64_t done = 0; done < within && !hit; done += batch) {
      std::vector<iogrid::ObjectRef<std::int64_t>> refs;
      refs.reserve(batch);
      for (std::uint64_t i = 0; i < batch; ++i)
        refs.push_back(iogrid::task(market_spot_work).options({.node = "cheater", .verify_fraction = fraction}).remote(next++));
      for (auto& r : refs) (void)iogrid::get(r);
      tasks += batch;
      hit = iogrid::spot_checks().settled > settled_before;
    }
    caught += hit ? 1 : 0;
  }
  const auto s = iogrid::spot_checks();
  return {double(caught) / double(trials), double(s.extra_runs) / double(s.draws), trials, tasks};
}

double mean_of(const std::vector<double>& v, std::size_t from, std::size_t to) {
  double s = 0;
  for (std::size_t i = from; i < to && i < v.size(); ++i) s += v[i];
  return to > from ? s / double(std::min(to, v.size()) - from) : 0;
}

}  // namespace

int run_market(const Options& o) {
  const auto want = selection(o, "market", {"ledger_append_entries_per_s", "ledger_verify_1m_entries_seconds",
                                             "supply_shock_recovery_rounds", "price_volatility", "user_cost_vs_fixed_price_ratio",
                                             "provider_earnings_fairness", "shading_gain", "cheater_caught_probability",
                                             "checking_overhead_fraction"});
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("iogrid-bench-market-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  // --seconds below 1 scales the journal down (tests); the figure's name holds for the default.
  const std::uint64_t n = o.seconds < 1 ? std::max<std::uint64_t>(1000, static_cast<std::uint64_t>(1e6 * o.seconds)) : 1000000;
  std::vector<Figure> figures;
  const bool ledger = want("ledger_append_entries_per_s") || want("ledger_verify_1m_entries_seconds");
  if (ledger) {
    progress(o, "market: journalling " + std::to_string(n) + " lease entries (a checkpoint every 10,000)");
    runtime::head::Journal j((dir / "head.db").string(), (dir / "ledger.key").string());
    std::mt19937_64 rng(7);
    const char* models[] = {"H100", "A100", "RTX4090", "RTX3090", "L4"};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<runtime::head::JournalEntry> batch;
    for (std::uint64_t i = 1; i <= n; ++i) {
      runtime::head::JournalEntry e;
      e.kind = "lease";
      e.job = "job-" + std::to_string(rng() % 5000);
      e.user = "user-" + std::to_string(rng() % 300);
      e.node = "node-" + std::to_string(rng() % 1213);
      e.gpu_model = models[rng() % 5];
      e.gpus = double(1 + rng() % 8);
      e.seconds = double(rng() % 36000) / 10;
      e.price = double(20 + rng() % 400) / 100;
      e.time_ms = 1'790'000'000'000 + static_cast<std::int64_t>(i) * 1000;
      const auto s = sched::split_charge(e.gpus * e.seconds * e.price / 3600, 0.05);
      e.charge = s.charge;
      e.earning = s.earning;
      e.fee = s.fee;
      batch.push_back(std::move(e));
      if (batch.size() == 10000 || i == n) {
        j.append_all(std::move(batch));
        batch.clear();
        j.checkpoint();
      }
    }
    const double append_s = secs(t0, std::chrono::steady_clock::now());
    if (want("ledger_append_entries_per_s"))
      figures.push_back({"ledger_append_entries_per_s", double(n) / append_s, "entries/s", true, {double(n) / append_s}});
  }
  if (ledger && want("ledger_verify_1m_entries_seconds")) {
    const auto pub = [&] {
      std::ifstream in(dir / "ledger.key.pub");
      std::ostringstream s;
      s << in.rdbuf();
      return s.str();
    }();
    Figure f{"ledger_verify_1m_entries_seconds", 0, "s", false, {}};
    for (int r = 0; r < o.runs; ++r) {
      const auto check = runtime::head::Journal::verify((dir / "head.db").string(), pub);
      if (!check.ok || check.entries != n) throw std::runtime_error("bench market: the journal did not verify: " + check.why);
      f.runs.push_back(check.seconds);
      progress(o, "market: verified " + std::to_string(check.entries) + " entries in " + std::to_string(check.seconds) + " s");
    }
    f.value = median(f.runs);
    figures.push_back(f);
  }
  // The simulation's figures, one seed a run.
  const bool sim = want("supply_shock_recovery_rounds") || want("price_volatility") || want("user_cost_vs_fixed_price_ratio") ||
                   want("provider_earnings_fairness") || want("shading_gain");
  if (sim) {
    Figure recovery{"supply_shock_recovery_rounds", 0, "rounds", false, {}}, volatility{"price_volatility", 0, "std", false, {}},
        cost{"user_cost_vs_fixed_price_ratio", 0, "x", false, {}}, fairness{"provider_earnings_fairness", 0, "jain", true, {}},
        shading{"shading_gain", 0, "x", false, {}};
    for (int run = 0; run < o.runs; ++run) {
      SimConfig base;
      base.seed = 100 + std::uint64_t(run);
      const auto r = simulate(base);
      const auto shock = std::size_t(base.shock_round);
      // Rounds until the A100 market's utilisation is back inside the band for 3 rounds in a row.
      const sched::PricingRules rules;
      double rounds = double(base.rounds - base.shock_round);
      for (std::size_t t = shock; t + 2 < r.utilisation.size(); ++t) {
        auto in = [&](std::size_t k) { return r.utilisation[k] >= rules.band_low && r.utilisation[k] <= rules.band_high; };
        if (in(t) && in(t + 1) && in(t + 2)) {
          rounds = double(t - shock);
          break;
        }
      }
      recovery.runs.push_back(rounds);
      std::vector<double> changes;
      for (std::size_t t = 51; t < shock; ++t) changes.push_back(r.price[t] / r.price[t - 1] - 1);
      const double m = mean_of(changes, 0, changes.size());
      double var = 0;
      for (double x : changes) var += (x - m) * (x - m);
      volatility.runs.push_back(std::sqrt(var / double(changes.size())));
      // A fixed price with the same utilisation over the same rounds (bisection; higher price, lower use).
      const double u_target = mean_of(r.utilisation, 50, shock);
      double lo = 0.2, hi = 4.0;
      SimResult fixed_run;
      for (int k = 0; k < 14; ++k) {
        SimConfig f = base;
        f.shock_round = -1;
        f.rounds = base.shock_round;
        f.fixed_price_scale = (lo + hi) / 2;
        fixed_run = simulate(f);
        (mean_of(fixed_run.utilisation, 50, shock) > u_target ? lo : hi) = f.fixed_price_scale;
      }
      cost.runs.push_back((r.paid / r.gpu_hours) / (fixed_run.paid / fixed_run.gpu_hours));
      // Jain's index of earnings per GPU-hour offered, over the providers that offered any.
      double sum = 0, sq = 0;
      int n = 0;
      for (std::size_t i = 0; i < r.provider_earned.size(); ++i)
        if (r.provider_offered[i] > 0) {
          const double x = r.provider_earned[i] / r.provider_offered[i];
          sum += x;
          sq += x * x;
          ++n;
        }
      fairness.runs.push_back(n && sq > 0 ? sum * sum / (n * sq) : 0);
      // Shading: one provider asks 10% less or more than its reserve, one user (a hundredth of the jobs) bids
      // 10% less or more than its values; their utility (earnings minus reserve, value minus price) against
      // truthful, summed over 8 seeds (one changed ask moves every later placement: single runs are noise).
      double best = -1e9;
      for (double f : {0.9, 1.1})
        for (const bool provider : {true, false}) {
          double truthful = 0, shaded = 0;
          for (std::uint64_t k = 0; k < 8; ++k) {
            SimConfig t = base, sh = base;
            t.seed = sh.seed = base.seed * 1000 + k;
            t.probed_provider = sh.probed_provider = (k * 37 + 3) % 240;  // a different one each time
            (provider ? sh.provider_shading : sh.user_shading) = f;
            const auto a = simulate(t), b = simulate(sh);
            truthful += provider ? a.probed_provider_utility : a.probed_user_utility;
            shaded += provider ? b.probed_provider_utility : b.probed_user_utility;
          }
          best = std::max(best, (shaded - truthful) / std::abs(truthful));
        }
      shading.runs.push_back(best);
      progress(o, "market: seed " + std::to_string(base.seed) + ": recovery " + std::to_string(rounds) + " rounds, fairness " +
                      std::to_string(fairness.runs.back()) + ", shading gain " + std::to_string(best));
    }
    for (auto* f : {&recovery, &volatility, &cost, &fairness, &shading})
      if (want(f->name)) {
        f->value = median(f->runs);
        figures.push_back(*f);
      }
  }
  if (want("cheater_caught_probability") || want("checking_overhead_fraction")) {
    // 2% wrong, 5% checked, within 5,000 of its tasks: the rule predicts 1 - (1 - 0.001)^5000 = 0.9933.
    const auto trials = std::max<std::uint64_t>(20, static_cast<std::uint64_t>(1000 * std::min(1.0, o.seconds)));
    Figure caught{"cheater_caught_probability", 0, "share", true, {}}, overhead{"checking_overhead_fraction", 0, "x", false, {}};
    for (int run = 0; run < o.runs; ++run) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto f = measure_checks(trials, 5000, 0.05, 1000 + std::uint64_t(run));
      caught.runs.push_back(f.caught_share);
      overhead.runs.push_back(f.overhead);
      progress(o, "market: spot checks: caught in " + std::to_string(f.caught_share) + " of " + std::to_string(f.trials) +
                      " trials (" + std::to_string(f.tasks) + " tasks, " + std::to_string(secs(t0, std::chrono::steady_clock::now())) +
                      " s; predicted " + std::to_string(sched::predicted_catch_probability(0.02, 0.05, 5000)) +
                      "), extra runs " + std::to_string(f.overhead));
    }
    for (auto* f : {&caught, &overhead})
      if (want(f->name)) {
        f->value = median(f->runs);
        figures.push_back(*f);
      }
  }
  print("market", o, figures);
  return 0;
}

}  // namespace iogrid::bench
