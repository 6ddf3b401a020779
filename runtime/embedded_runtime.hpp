// EmbeddedRuntime: head, nodes, job and workers inside the user's process (no sockets). The default
// mode and the substrate of most tests. Implements the SDK's Core interface.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/submitter_core.hpp"

namespace iogrid::runtime {

std::unique_ptr<SubmitterCore> start_embedded(const InitOptions& opts);

}  // namespace iogrid::runtime
