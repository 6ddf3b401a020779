// Spot checks: a sampled share of deterministic work is run again on another provider and the results compared
// (replication in the manner of Verde; Freivalds-style algebraic checks are for the kernels that allow them).
// Assumptions: the task is deterministic (same function, same arguments, same result, within the tolerance it
// states); most providers are honest; a provider cannot tell a check from ordinary work (the re-run is the same
// function on the same arguments, sent like any other task; the owner decides after the first run finished).
// Rules (the owner's runtime applies them, runtime/spot_checker.hpp; the head applies the reputation rule):
// - Sampling: each successful run of a task that asks for checks (verify_fraction f in (0, 1]) is checked with
//   probability f, drawn by the owner from a seeded generator.
// - A check runs the task again on a provider other than the first (sched::ResourceRequest::avoid_nodes; a task
//   pinned to a node is checked elsewhere). Results compare bitwise, or, when the task states a tolerance t > 0,
//   the SDK's typed comparison: floating-point values element by element, |a - b| <= t x max(1, |a|, |b|).
// - Match: the first result stands; both providers get check_passed (scheduler/reputation.hpp).
// - Mismatch: a third run, on a provider other than both, settles it: the two results that agree stand (the user
//   gets that one), the provider that disagreed gets check_failed, the two that agreed check_passed. Three
//   different results: the task fails ("three providers disagree: is it deterministic?") and nobody is penalised
//   (nobody can tell who was right).
// - Unchecked: no other provider can run it, a check's run fails (an error or a lost node is not evidence of a
//   wrong result), or the result holds ObjectRefs (their ids differ run to run): the first result stands, counted.
// Predictions: a provider wrong on a share w of its tasks, checked by honest providers, is caught on each of its
// tasks with probability w x f, and within n of its tasks with 1 - (1 - w f)^n (w = 0.02, f = 0.05, n = 5,000:
// 0.9933). The extra compute is f (second runs) plus f x m (third runs, m the share of checks that mismatch).
#pragma once

#include <cstdint>
#include <string>

namespace iogrid::sched {

enum class CheckVerdict {
  agreed,     // the second run matched the first
  settled,    // a mismatch, settled by a third run (one provider disagreed)
  unsettled,  // three different results: the task failed
  unchecked,  // sampled, but no check could be completed; the first result stands
};
const char* to_string(CheckVerdict v);

// Whether a run is checked, from a uniform draw u in [0, 1).
inline bool sample_check(double fraction, double u) { return fraction > 0 && u < fraction; }

// Which result stands after a mismatch between runs 0 and 1, given whether the third run matched each:
// 0 or 1, or -1 when the third matches neither (unsettled).
inline int settle(bool third_matches_first, bool third_matches_second) {
  if (third_matches_first) return 0;
  if (third_matches_second) return 1;
  return -1;
}

// 1 - (1 - wrong_share x fraction)^tasks: the chance a provider wrong on `wrong_share` of its tasks is caught
// within `tasks` of them.
double predicted_catch_probability(double wrong_share, double fraction, std::uint64_t tasks);
// f + f x mismatch_share: extra runs per original run.
inline double expected_check_overhead(double fraction, double mismatch_share) {
  return fraction + fraction * mismatch_share;
}

// The largest share that may be asked for (1: every run checked, doubling the work).
inline constexpr double kMaxVerifyFraction = 1.0;
// A SplitMix64 step: the owner's draws are splitmix64(seed + n) / 2^64 for the n-th sampled run.
std::uint64_t splitmix64(std::uint64_t x);
inline double uniform_from(std::uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

}  // namespace iogrid::sched
