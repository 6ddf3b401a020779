// The scheduler's trace CSV reader (`iogrid sched replay --nodes F --tasks F`): node and task files as users
// bring them. A malformed file is refused with std::invalid_argument naming its line; a file that reads must
// write and read back the same.
#include <sstream>
#include <stdexcept>

#include "fuzz.hpp"
#include "scheduler/trace.hpp"

namespace {

using namespace iogrid::sched;

std::vector<std::string> seeds() {
  auto t = generate_trace(6, 20, 7, parse_mix("sharing"));
  std::ostringstream n, k;
  write_nodes_csv(n, t.nodes);
  write_tasks_csv(k, t.tasks);
  return {"N" + n.str(), "T" + k.str()};
}

}  // namespace

// First byte: 'N' (or any even byte) a node file, otherwise a task file.
IOGRID_FUZZ_TARGET(trace_csv, seeds) {
  if (size < 1) return 0;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  // What reads must write and read back (a refusal of our own output is a finding: it traps).
  auto round_trip = [](auto read, auto write, const auto& values) {
    std::ostringstream out;
    write(out, values);
    std::istringstream again(out.str());
    try {
      if (read(again).size() != values.size()) __builtin_trap();
    } catch (const std::invalid_argument&) {
      __builtin_trap();
    }
  };
  auto read_then_round_trip = [&](auto read, auto write) {
    try {
      auto values = read(in);
      round_trip(read, write, values);
    } catch (const std::invalid_argument&) {  // refused input (round_trip traps on its own refusals)
    }
  };
  if (data[0] % 2 == 0) read_then_round_trip(read_nodes_csv, write_nodes_csv);
  else read_then_round_trip(read_tasks_csv, write_tasks_csv);
  return 0;
}
