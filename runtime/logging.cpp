#include "runtime/logging.hpp"

#include <spdlog/spdlog.h>

#include "iogrid/core/errors.hpp"

namespace iogrid::runtime {

void set_log_level(const std::string& level) {
  for (const char* known : {"trace", "debug", "info", "warn", "error", "critical", "off"})
    if (level == known) return spdlog::set_level(spdlog::level::from_str(level));
  throw core::Error("iogrid: unknown log level '" + level + "' (trace, debug, info, warn, error, critical, off)");
}

}  // namespace iogrid::runtime
