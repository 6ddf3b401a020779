// FIFO: no early stopping. Trials run in table order, each for every iteration (a plain grid or random search).
#pragma once

#include "iogrid/tune/scheduler.hpp"

namespace iogrid::tune {

class FifoScheduler final : public Scheduler {
 public:
  std::optional<Decision> next(const std::vector<Trial>& trials, const Objective& objective,
                               int max_iterations) const override;
  std::string name() const override { return "fifo"; }
};

}  // namespace iogrid::tune
