// Moving task specs and their outcomes across processes: a TaskSpec becomes a proto::TaskSpec with the values
// of its ObjectRef arguments inline (the owner resolves them first), and comes back to life in the worker
// process as a TaskSpec whose dependencies are ready local entries.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common.capnp.h"
#include "iogrid/detail/task_spec.hpp"
#include "wire.capnp.h"
#include "worker/work_source.hpp"

namespace iogrid::runtime::cluster {

// A spec received by a worker process, with the owner's id for it.
struct RemoteSpec : detail::TaskSpec {
  std::uint64_t task_id = 0;
  std::string missing_function;   // set when this executable has no function of that name
};

void write_task(proto::TaskSpec::Builder b, const detail::TaskSpec& spec, std::uint64_t task_id);
std::unique_ptr<RemoteSpec> read_task(proto::TaskSpec::Reader r);

void write_result(proto::TaskResult::Builder b, std::uint64_t task_id, const worker::Outcome& out);
worker::Outcome read_result(proto::TaskResult::Reader r);

}  // namespace iogrid::runtime::cluster
