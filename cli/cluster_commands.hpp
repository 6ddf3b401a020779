// `iogrid head`, `iogrid node`, `iogrid status`, `iogrid job ...`.
#pragma once

#include <string>
#include <vector>

namespace iogrid::cli {

int head_command(const std::vector<std::string>& args);
int node_command(const std::vector<std::string>& args);
int status_command(const std::vector<std::string>& args);
int job_command(const std::vector<std::string>& args);

}  // namespace iogrid::cli
