// EmbeddedRuntime: head, nodes, job and workers inside the user's process (no sockets). The default
// mode and the substrate of most tests. Implements the SDK's Core interface.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "iogrid/detail/core.hpp"
#include "iogrid/runtime.hpp"

namespace iogrid::runtime {

class EmbeddedRuntime;

std::unique_ptr<detail::Core> start_embedded(const InitOptions& opts);
std::vector<NodeInfo> describe_nodes(detail::Core& core);
void stop_embedded(detail::Core& core);
void embedded_kv_put(detail::Core& core, const std::string& key, const std::string& value);
std::optional<std::string> embedded_kv_get(detail::Core& core, const std::string& key);

}  // namespace iogrid::runtime
