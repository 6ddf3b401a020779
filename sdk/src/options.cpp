#include "iogrid/detail/submit.hpp"

namespace iogrid::detail {

namespace {
template <class O>
core::Requirements needs_of(const O& o) {
  core::Requirements r;
  r.cpus = o.num_cpus;
  r.gpus = o.num_gpus;
  r.gpu_model = o.gpu_model;
  r.min_gpu_memory_gib = o.min_gpu_memory_gib;
  r.min_compute_capability = o.min_compute_capability;
  r.memory_gib = o.memory_gib;
  r.resources = o.resources;
  r.labels = o.labels;
  r.node = o.node;
  r.cluster = o.cluster;
  r.bundle = o.bundle;
  r.max_price = o.max_price;
  r.preferred_regions = o.preferred_regions;
  r.min_reputation = o.min_reputation;
  r.min_gpu_tflops = o.min_gpu_tflops;
  r.allow_unverified_gpus = o.allow_unverified_gpus;
  r.priority = o.priority;
  r.tier = o.tier;
  return r;
}
}  // namespace

core::TaskOptions to_core(const TaskOptions& o) {
  core::TaskOptions t;
  t.needs = needs_of(o);
  t.max_retries = o.max_retries;
  t.retry_exceptions = o.retry_exceptions;
  t.verify_fraction = o.verify_fraction;
  t.verify_tolerance = o.verify_tolerance;
  return t;
}

core::ActorOptions to_core(const ActorOptions& o) {
  core::ActorOptions a;
  a.needs = needs_of(o);
  a.max_restarts = o.max_restarts;
  a.max_task_retries = o.max_task_retries;
  return a;
}

}  // namespace iogrid::detail
