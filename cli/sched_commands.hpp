// `iogrid sched generate` (synthetic traces) and `iogrid sched replay` (a trace through the real scheduler).
#pragma once

#include <string>
#include <vector>

namespace iogrid::cli {

int sched_command(const std::vector<std::string>& args);

}  // namespace iogrid::cli
