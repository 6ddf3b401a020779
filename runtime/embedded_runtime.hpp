// EmbeddedRuntime: head, nodes, job and workers inside the user's process (no sockets). The default
// mode and the substrate of most tests. Implements the SDK's Core interface.
#pragma once

#include <memory>
#include <vector>

#include "iogrid/detail/core.hpp"
#include "iogrid/runtime.hpp"

namespace iogrid::runtime {

class EmbeddedRuntime;

std::unique_ptr<detail::Core> start_embedded(const InitOptions& opts);
std::vector<NodeInfo> describe_nodes(detail::Core& core);
void stop_embedded(detail::Core& core);

}  // namespace iogrid::runtime
