// A sweep's saved state (Config::dir/sweep.state), as resuming reads it; a state that loads saves and loads
// back the same.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz.hpp"
#include "iogrid/tune/sweep_state.hpp"

namespace {

using namespace iogrid;

std::vector<std::string> seeds() {
  tune::SweepState st;
  st.name = "sweep";
  st.max_iterations = 4;
  for (int i = 0; i < 3; ++i) {
    tune::Trial t;
    t.id = i;
    t.status = i == 0 ? tune::TrialStatus::done : tune::TrialStatus::running;
    t.history.resize(std::size_t(i + 1));
    t.history.back()["accuracy"] = 0.5 + 0.1 * i;
    t.checkpoint_iteration = i;
    st.trials.push_back(t);
  }
  auto dir = std::filesystem::temp_directory_path() / "iogrid-fuzz-seeds-sweep";
  std::filesystem::create_directories(dir);
  auto file = (dir / "sweep.state").string();
  tune::save_sweep_state(file, st);
  std::ifstream f(file, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  std::filesystem::remove_all(dir);
  return {bytes};
}

}  // namespace

IOGRID_FUZZ_TARGET(sweep_state, seeds) {
  auto path = fuzz::scratch_file(data, size);
  tune::SweepState st;
  try {
    st = tune::load_sweep_state(path);
  } catch (const Error&) {
    return 0;
  }
  for (const auto& t : st.trials) {
    (void)tune::to_string(t.status);
    (void)t.metric(st.objective.metric);
    (void)t.params.str();
  }
  tune::save_sweep_state(path, st);
  if (tune::load_sweep_state(path).trials.size() != st.trials.size()) __builtin_trap();
  return 0;
}
