// The head and node daemons behind `iogrid head` and `iogrid node`: each runs its service on a CAF actor
// system until SIGINT or SIGTERM.
#pragma once

#include <iosfwd>

#include "runtime/cluster/head_service.hpp"
#include "runtime/cluster/node_service.hpp"

namespace iogrid::runtime::cluster {

// Prints where the head listens and the exact commands to join it, then serves.
int run_head(const HeadOptions& opts, const std::string& token_file, const std::string& log_level, std::ostream& out);
int run_node(const NodeDaemonOptions& opts, const std::string& log_level);

// The first non-loopback IPv4 address of this machine (127.0.0.1 when there is none).
std::string primary_ip();

}  // namespace iogrid::runtime::cluster
