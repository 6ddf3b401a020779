// The NCCL backend of collective groups, for buffers in GPU memory (one device per member). It lives in the
// NCCL plugin libiogrid_nccl.so (gpu/cuda_plugin.hpp); make_nccl throws CollectiveError saying why when the
// plugin (or NCCL itself) is not there.
// Rules beyond backend.hpp: rank 0 creates the NCCL unique id and publishes it through the Store; the
// communicator is non-blocking, and every operation waits on its stream while polling NCCL's asynchronous
// error and the group's timeout: a member that dies or stops makes the others' call abort the communicator
// and throw CollectiveError instead of hanging.
#pragma once

#include <memory>
#include <string>

#include "gpu/collective/backend.hpp"

namespace iogrid::gpu::collective {

std::unique_ptr<Backend> make_nccl(Store& store, const std::string& prefix, int rank, int size, int device,
                                   const GroupOptions& o);

}  // namespace iogrid::gpu::collective
