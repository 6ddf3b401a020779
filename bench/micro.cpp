// `iogrid bench micro`: Ray's core microbenchmarks, measured the way Ray measures them.
//   *_sync:  submit one, get it, repeat.     *_async: submit a batch, then get all.
//   wait_1k_refs: submit 1000 tasks, then wait(k=1) until none is left, repeatedly.
//   put_gigabytes: put of a 100 MiB buffer passed by const reference (one copy into the store).
//   queued_1m_tasks: 1,000,000 no-op tasks submitted at once, time to the last result and peak RSS.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <functional>
#include <iogrid/iogrid.hpp>
#include <vector>

#include "bench/report.hpp"

namespace {

int noop() { return 0; }
IOGRID_REMOTE(noop);

struct Counter {
  int n = 0;
  int inc() { return ++n; }
};
IOGRID_REMOTE(&Counter::inc);

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Repeats `batch` (which does `per_batch` operations) for about `seconds`; returns operations per second.
double rate(double seconds, std::size_t per_batch, const std::function<void()>& batch) {
  batch();  // warm-up
  auto t0 = Clock::now();
  std::size_t ops = 0;
  do {
    batch();
    ops += per_batch;
  } while (secs(t0, Clock::now()) < seconds);
  return double(ops) / secs(t0, Clock::now());
}

double peak_rss_gib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024.0 / double(1ull << 30);
}

}  // namespace

namespace iogrid::bench {

int run_micro(const Options& o) {
  if (o.mode != "embedded") {
    std::cerr << "iogrid bench micro: mode '" << o.mode
              << "' is not available in this build (cluster mode is not built yet); use --mode embedded\n";
    return 2;
  }
  auto wanted = [&](const std::string& n) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), n) != o.only.end();
  };
  std::vector<Figure> figs;
  auto measure = [&](const std::string& name, const std::string& unit, bool higher, const std::function<double()>& run) {
    if (!wanted(name)) return;
    Figure f{name, 0, unit, higher, {}};
    for (int i = 0; i < o.runs; ++i) {
      f.runs.push_back(run());
      progress(o, name + " run " + std::to_string(i + 1) + "/" + std::to_string(o.runs) + ": " +
                      std::to_string(f.runs.back()) + " " + unit);
    }
    f.value = median(f.runs);
    figs.push_back(std::move(f));
  };

  iogrid::init();
  measure("single_client_tasks_sync", "/s", true, [&] {
    return rate(o.seconds, 100, [] {
      for (int i = 0; i < 100; ++i) (void)iogrid::get(iogrid::task(noop).remote());
    });
  });
  measure("single_client_tasks_async", "/s", true, [&] {
    return rate(o.seconds, 1000, [] {
      std::vector<ObjectRef<int>> refs;
      refs.reserve(1000);
      for (int i = 0; i < 1000; ++i) refs.push_back(iogrid::task(noop).remote());
      (void)iogrid::get(refs);
    });
  });
  {
    auto actor = iogrid::actor<Counter>().remote();
    measure("1_1_actor_calls_sync", "/s", true, [&] {
      return rate(o.seconds, 100, [&] {
        for (int i = 0; i < 100; ++i) (void)iogrid::get(actor.call(&Counter::inc).remote());
      });
    });
    measure("1_1_actor_calls_async", "/s", true, [&] {
      return rate(o.seconds, 1000, [&] {
        std::vector<ObjectRef<int>> refs;
        refs.reserve(1000);
        for (int i = 0; i < 1000; ++i) refs.push_back(actor.call(&Counter::inc).remote());
        (void)iogrid::get(refs);
      });
    });
  }
  measure("single_client_wait_1k_refs", "/s", true, [&] {
    return rate(o.seconds, 1, [] {
      std::vector<ObjectRef<int>> not_ready;
      not_ready.reserve(1000);
      for (int i = 0; i < 1000; ++i) not_ready.push_back(iogrid::task(noop).remote());
      while (!not_ready.empty()) not_ready = iogrid::wait(not_ready, 1).not_ready;
    });
  });
  measure("single_client_put_gigabytes", "GB/s", true, [&] {
    std::vector<std::uint8_t> buf(100u << 20, 1);
    const auto& cref = buf;
    double r = rate(o.seconds, 1, [&] { (void)iogrid::put(cref); });
    return r * double(buf.size()) / 1e9;
  });
  iogrid::shutdown();

  if (wanted("queued_1m_tasks_seconds")) {
    Figure t{"queued_1m_tasks_seconds", 0, "s", false, {}};
    Figure m{"queued_1m_tasks_peak_rss_gib", 0, "GiB", false, {}};
    iogrid::init();
    const int n = 1000000;
    auto t0 = Clock::now();
    ObjectRef<int> last;
    {
      std::vector<ObjectRef<int>> refs;
      refs.reserve(n);
      for (int i = 0; i < n; ++i) refs.push_back(iogrid::task(noop).remote());
      last = refs.back();
      progress(o, "queued_1m_tasks: submitted 1,000,000 tasks in " + std::to_string(secs(t0, Clock::now())) + " s");
      (void)iogrid::get(refs);
    }
    t.runs.push_back(secs(t0, Clock::now()));
    m.runs.push_back(peak_rss_gib());
    t.value = t.runs[0];
    m.value = m.runs[0];
    iogrid::shutdown();
    figs.push_back(t);
    figs.push_back(m);
  }
  print("micro", o, figs);
  return 0;
}

}  // namespace iogrid::bench
