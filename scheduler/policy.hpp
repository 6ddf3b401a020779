// A scheduling policy picks one node for one request from a cluster view. Policies are stateless apart
// from what they are given (randomness and round-robin cursors are injected/owned explicitly), so tests
// construct a view and assert the exact node chosen.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "scheduler/resources.hpp"

namespace iogrid::sched {

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  // The index of a node whose available capacity fits `req`, or nullopt when none fits now.
  virtual std::optional<std::uint32_t> select(const ClusterView& view, const ResourceRequest& req) = 0;
  virtual std::string_view name() const = 0;
};

// "pack" (best fit), "spread", "random" (seeded), "first-fit", "dot-product" or "fgd" (fragmentation-aware); throws std::invalid_argument naming the choices otherwise.
std::unique_ptr<SchedulingPolicy> make_policy(const std::string& name, std::uint64_t seed = 1);

}  // namespace iogrid::sched
