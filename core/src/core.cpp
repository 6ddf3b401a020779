#include "iogrid/core/core.hpp"

#include <atomic>

#include "iogrid/core/errors.hpp"

namespace iogrid::core {

namespace {
std::atomic<Core*> g_core{nullptr};
}

Core& current() {
  auto* c = g_core.load(std::memory_order_acquire);
  if (!c) throw RuntimeError("iogrid: the runtime is not running; call iogrid::init() first");
  return *c;
}
bool is_running() { return g_core.load(std::memory_order_acquire) != nullptr; }
void install(Core* c) { g_core.store(c, std::memory_order_release); }

}  // namespace iogrid::core
