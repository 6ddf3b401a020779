// bench market: the market's figures (issue 20). So far the ledger's journal (runtime/head/journal.hpp): how
// fast a head appends entries, and how long `iogrid ledger verify` takes over a million of them (the chain,
// each entry's double entry and the signed checkpoints). The price controller's, spot checks' and fairness
// figures are not built yet.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <random>
#include <string>
#include <unistd.h>

#include "bench/report.hpp"
#include "runtime/head/journal.hpp"
#include "scheduler/ledger.hpp"

namespace iogrid::bench {

int run_market(const Options& o) {
  const auto want = selection(o, "market", {"ledger_append_entries_per_s", "ledger_verify_1m_entries_seconds"});
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
  {
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
  if (want("ledger_verify_1m_entries_seconds")) {
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
  print("market", o, figures);
  return 0;
}

}  // namespace iogrid::bench
