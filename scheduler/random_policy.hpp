// RandomPolicy: uniform choice among nodes whose available capacity fits. The random source is
// injected (a seeded generator), so tests replay the same choices.
#pragma once

#include <functional>
#include <random>

#include "scheduler/policy.hpp"

namespace iogrid::sched {

class RandomPolicy final : public SchedulingPolicy {
 public:
  explicit RandomPolicy(std::function<std::uint64_t()> rng) : rng_(std::move(rng)) {}
  explicit RandomPolicy(std::uint64_t seed) : RandomPolicy([g = std::mt19937_64(seed)]() mutable { return g(); }) {}
  using SchedulingPolicy::select;
  std::optional<std::uint32_t> select(const ClusterState& state, const ResourceRequest& req) override;
  std::string_view name() const override { return "random"; }

 private:
  std::function<std::uint64_t()> rng_;
};

}  // namespace iogrid::sched
