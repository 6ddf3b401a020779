// ASHA: asynchronous successive halving (Li et al., "A System for Massively Parallel Hyperparameter Tuning").
//
// Assumptions: a trial's metric after r iterations predicts its final metric well enough to drop the worst
// early; trials can pause at a checkpoint and continue later on another actor.
//
// Rules:
// - Rungs sit at grace, grace*eta, grace*eta^2, ... iterations, below max_iterations. A trial runs until its next
//   rung (or max_iterations past the last rung) and pauses there.
// - A free slot first looks for a promotion, from the highest rung down: a paused trial at rung r that is among
//   the best floor(n/eta) of the n trials that have reached r (by the metric after r iterations) runs on to the
//   next rung. Ties break by trial id.
// - A paused trial that is not at a rung (retried after a failure, or a resumed sweep's) goes on to its next rung
//   before anything else.
// - With no promotion open, the slot starts a pending trial (up to the first rung), in an order scrambled from
//   `seed`: a grid in its own order walks smoothly through the space, so each new trial would look best so far
//   at its rung and be promoted, defeating early stopping.
// - With neither, nothing runs now; when the sweep ends, trials still paused were stopped early.
// So each rung passes about 1/eta of its trials upward, decided with whatever results exist when a slot frees up
// (no waiting for a rung to fill), and a trial promoted once is never demoted.
#pragma once

#include <cstdint>
#include <vector>

#include "iogrid/tune/scheduler.hpp"

namespace iogrid::tune {

struct AshaOptions {
  int grace = 1;  // iterations before the first rung
  int eta = 3;    // reduction factor: 1/eta of a rung goes on
  std::uint64_t seed = 1;  // the order new trials start in
};

class AshaScheduler final : public Scheduler {
 public:
  explicit AshaScheduler(AshaOptions o = {});  // throws iogrid::Error for grace < 1 or eta < 2
  std::optional<Decision> next(const std::vector<Trial>& trials, const Objective& objective,
                               int max_iterations) const override;
  std::string name() const override { return "asha"; }
  std::vector<int> rungs(int max_iterations) const;  // the rung milestones below max_iterations

 private:
  AshaOptions o_;
};

}  // namespace iogrid::tune
