// Trial schedulers: which trial a free slot runs next, and for how many iterations. A scheduler sees the whole
// trial table (injected, so tests build tables by hand) and keeps no state of its own: a resumed sweep gets
// the same decisions from its saved table.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "iogrid/tune/trial.hpp"

namespace iogrid::tune {

struct Decision {
  int trial = -1;  // index into the table
  int until = 0;   // run it until it has this many iterations, then it pauses (or is done at max_iterations)
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // The next trial for a free slot among pending and paused ones, or nullopt: nothing to run now (a running
  // trial's result may change that). Running trials are never chosen.
  virtual std::optional<Decision> next(const std::vector<Trial>& trials, const Objective& objective,
                                       int max_iterations) const = 0;
  virtual std::string name() const = 0;
};

}  // namespace iogrid::tune
