// A sweep's saved state (Config::dir/sweep.state): its trials, what they are measured by, and how far each got.
// Written atomically after every change; read back when a sweep resumes. A damaged or foreign file is refused
// with iogrid::Error naming it (tests/fuzz/fuzz_sweep_state.cpp feeds it arbitrary bytes).
#pragma once

#include <string>
#include <vector>

#include "iogrid/serialization.hpp"
#include "iogrid/tune/trial.hpp"

namespace iogrid::tune {

struct SweepState {
  int version = 1;
  std::string name;
  Objective objective;
  int max_iterations = 0;
  std::vector<Trial> trials;
  IOGRID_SERIALIZE(version, name, objective, max_iterations, trials)
};

void save_sweep_state(const std::string& path, const SweepState& st);
SweepState load_sweep_state(const std::string& path);

}  // namespace iogrid::tune
