#include <cstdlib>
#include <memory>
#include <mutex>

#include "iogrid/detail/core.hpp"
#include "iogrid/errors.hpp"
#include "iogrid/runtime.hpp"
#include "runtime/embedded_runtime.hpp"

namespace iogrid {

namespace {
std::mutex g_mutex;
std::unique_ptr<detail::Core> g_core;
}  // namespace

void init(InitOptions options) {
  std::lock_guard<std::mutex> g(g_mutex);
  if (g_core) throw RuntimeError("iogrid: init() called twice; call iogrid::shutdown() first");
  if (options.address.empty())
    if (const char* env = std::getenv("IOGRID_ADDRESS"); env && *env) options.address = env;
  if (!options.address.empty())
    throw RuntimeError("iogrid: joining a running cluster (" + options.address +
                       ") needs cluster mode, which this build does not have yet; unset IOGRID_ADDRESS to use the "
                       "embedded cluster");
  g_core = runtime::start_embedded(options);
  detail::set_core(g_core.get());
}

void shutdown() {
  std::unique_ptr<detail::Core> c;
  {
    std::lock_guard<std::mutex> g(g_mutex);
    detail::set_core(nullptr);
    c = std::move(g_core);
  }
  if (c) runtime::stop_embedded(*c);
}

bool is_initialized() { return detail::core_running(); }

std::vector<NodeInfo> nodes() { return runtime::describe_nodes(detail::core()); }

std::string current_node() { return detail::core_running() ? detail::core().current_node() : "driver"; }

std::int64_t live_objects() { return detail::ObjectEntry::live_entries.load(); }

}  // namespace iogrid
