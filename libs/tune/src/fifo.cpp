#include "iogrid/tune/fifo.hpp"

namespace iogrid::tune {

std::optional<Decision> FifoScheduler::next(const std::vector<Trial>& trials, const Objective&, int max_iterations) const {
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const auto s = trials[i].status;
    if (s == TrialStatus::pending || s == TrialStatus::paused) return Decision{int(i), max_iterations};
  }
  return std::nullopt;
}

}  // namespace iogrid::tune
