// Conversions between the scheduler's C++ resource model and the wire schemas (common.capnp), plus
// helpers that encode to/decode from flat bytes. Decoding is bounds-checked by Cap'n Proto and a
// traversal limit; malformed bytes raise iogrid::proto::DecodeError.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.capnp.h"
#include "wire.capnp.h"
#include "gpu/devices.hpp"
#include "scheduler/resources.hpp"

namespace iogrid::proto {

struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void write(ResourceRequest::Builder b, const sched::ResourceRequest& r);
sched::ResourceRequest read(ResourceRequest::Reader r);
void write(NodeInfo::Builder b, const sched::Node& n);
sched::Node read(NodeInfo::Reader r);

void write(Allocation::Builder b, const sched::Allocation& a);
void write(GpuTelemetry::Builder b, const gpu::Telemetry& t);
gpu::Telemetry read(GpuTelemetry::Reader r);
sched::Allocation read(Allocation::Reader r);

std::vector<std::uint8_t> encode(const sched::ResourceRequest& r);
sched::ResourceRequest decode_request(const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> encode(const sched::Node& n);
sched::Node decode_node(const std::vector<std::uint8_t>& bytes);

}  // namespace iogrid::proto
