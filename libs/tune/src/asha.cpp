#include "iogrid/tune/asha.hpp"

#include <algorithm>

#include "iogrid/errors.hpp"

namespace iogrid::tune {

namespace {
std::uint64_t scramble(std::uint64_t x) {  // splitmix64's finaliser: a fixed permutation of 64-bit numbers
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

AshaScheduler::AshaScheduler(AshaOptions o) : o_(o) {
  if (o_.grace < 1) throw Error("iogrid: ASHA's grace period must be at least 1 iteration");
  if (o_.eta < 2) throw Error("iogrid: ASHA's reduction factor must be at least 2");
}

std::vector<int> AshaScheduler::rungs(int max_iterations) const {
  std::vector<int> r;
  for (long long at = o_.grace; at < max_iterations; at *= o_.eta) r.push_back(int(at));
  return r;
}

std::optional<Decision> AshaScheduler::next(const std::vector<Trial>& trials, const Objective& objective,
                                            int max_iterations) const {
  const auto rs = rungs(max_iterations);
  auto next_rung = [&](int it) {
    for (int r : rs)
      if (r > it) return r;
    return max_iterations;
  };
  // A paused trial between rungs (after a retry or a resumed sweep) first goes on to its next rung.
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const auto& t = trials[i];
    if (t.status == TrialStatus::paused && std::find(rs.begin(), rs.end(), t.iterations()) == rs.end())
      return Decision{int(i), next_rung(t.iterations())};
  }
  // Promotions, highest rung first.
  for (std::size_t k = rs.size(); k-- > 0;) {
    const int at = rs[k];
    std::vector<std::size_t> reached;  // trials with a result at this rung (running, paused or beyond)
    for (std::size_t i = 0; i < trials.size(); ++i)
      if (trials[i].iterations() >= at) reached.push_back(i);
    const std::size_t top = reached.size() / std::size_t(o_.eta);
    if (top == 0) continue;
    std::sort(reached.begin(), reached.end(), [&](std::size_t a, std::size_t b) {
      const double ma = trials[a].metric(objective.metric, at), mb = trials[b].metric(objective.metric, at);
      if (objective.better(ma, mb)) return true;
      if (objective.better(mb, ma)) return false;
      return trials[a].id < trials[b].id;
    });
    for (std::size_t j = 0; j < top; ++j) {
      const auto& t = trials[reached[j]];
      if (t.status == TrialStatus::paused && t.iterations() == at) {
        return Decision{int(reached[j]), next_rung(at)};
      }
    }
  }
  // Otherwise a new trial, up to the first rung: the pending one first in the scrambled order.
  std::optional<Decision> pick;
  std::uint64_t pick_key = 0;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    if (trials[i].status != TrialStatus::pending) continue;
    const auto key = scramble(std::uint64_t(trials[i].id) + o_.seed * 0x9e3779b97f4a7c15ull);
    if (!pick || key < pick_key) {
      pick = Decision{int(i), rs.empty() ? max_iterations : rs.front()};
      pick_key = key;
    }
  }
  return pick;
}

}  // namespace iogrid::tune
