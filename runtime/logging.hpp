// The runtime's log level for this process (spdlog): trace, debug, info, warn, error, critical or off.
// iogrid::init() sets it from InitOptions::log_level, or IOGRID_LOG_LEVEL when that is set.
#pragma once

#include <string>

namespace iogrid::runtime {

// Throws core::Error naming the levels on an unknown one.
void set_log_level(const std::string& level);

}  // namespace iogrid::runtime
