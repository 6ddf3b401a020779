#include "runtime/task_submitter.hpp"

#include <cmath>
#include <optional>

#include "iogrid/core/errors.hpp"
#include "runtime/head/reservations.hpp"
#include "scheduler/spot_check.hpp"
#include <mutex>

namespace iogrid::runtime {

namespace {
std::mutex g_cluster_mutex;
std::string g_default_cluster;

const std::string& default_cluster() {
  static thread_local std::string copy;
  std::lock_guard<std::mutex> g(g_cluster_mutex);
  copy = g_default_cluster;
  return copy;
}

sched::ResourceRequest common_request(const core::Requirements& o) {
  const double cpus = o.cpus;
  auto check = [](double v, const char* field) {
    if (!(v >= 0) || !std::isfinite(v))
      throw core::Error(std::string("iogrid: option ") + field + " must be a non-negative number, got " + std::to_string(v));
  };
  check(cpus, "num_cpus");
  check(o.gpus, "num_gpus");
  check(o.memory_gib, "memory_gib");
  check(o.min_gpu_memory_gib, "min_gpu_memory_gib");
  if (o.gpus > 1 && std::abs(o.gpus - std::round(o.gpus)) > 1e-9)
    throw core::Error("iogrid: num_gpus above 1 must be a whole number (got " + std::to_string(o.gpus) +
                "); fractions are for sharing one GPU");
  sched::ResourceRequest r;
  r.cpus = sched::to_milli(cpus);
  r.memory_mib = static_cast<std::int64_t>(o.memory_gib * 1024);
  r.gpus = sched::to_milli(o.gpus);
  r.gpu_models = sched::split_models(o.gpu_model);
  r.min_gpu_memory_mib = static_cast<std::int64_t>(o.min_gpu_memory_gib * 1024);
  r.min_compute_capability = o.min_compute_capability;
  for (const auto& [k, v] : o.resources) {
    check(v, k.c_str());
    r.custom[k] = sched::to_milli(v);
  }
  r.labels = o.labels;
  r.node = o.node;
  check(o.max_price, "max_price");
  check(o.min_reputation, "min_reputation");
  check(o.min_gpu_tflops, "min_gpu_tflops");
  if (o.min_reputation > 1) throw core::Error("iogrid: option min_reputation is between 0 and 1");
  r.max_price = o.max_price;
  r.min_reputation = o.min_reputation;
  r.min_gpu_tflops = o.min_gpu_tflops;
  r.allow_unverified = o.allow_unverified_gpus;
  r.priority = o.priority;
  if (!o.tier.empty()) {
    const auto tier = sched::parse_tier(o.tier);
    if (!tier) throw core::Error("iogrid: option tier is spot, standard or urgent, got '" + o.tier + "'");
    r.tier = *tier;
    r.priority += sched::tier_rule(*tier).priority;
  }
  const std::string& cluster = o.cluster.empty() ? default_cluster() : o.cluster;
  if (!cluster.empty()) r.reservation = head::parse_reservation(cluster);
  if (o.bundle >= 0 && !r.reservation) throw core::Error("iogrid: option bundle needs a cluster (option cluster or IOGRID_CLUSTER)");
  r.bundle = o.bundle < 0 ? -1 : o.bundle;
  r.preferred_regions = o.preferred_regions;
  if ((!r.gpu_models.empty() || r.min_gpu_memory_mib > 0 || r.min_compute_capability > 0) && r.gpus == 0)
    throw core::Error("iogrid: gpu_model / min_gpu_memory_gib / min_compute_capability need num_gpus > 0");
  return r;
}
}  // namespace

void set_default_cluster(const std::string& id) {
  if (!id.empty()) (void)head::parse_reservation(id);  // a malformed id fails at init, not at the first task
  std::lock_guard<std::mutex> g(g_cluster_mutex);
  g_default_cluster = id;
}

sched::ResourceRequest to_request(const core::TaskOptions& o) {
  if (o.max_retries < 0) throw core::Error("iogrid: option max_retries must be >= 0");
  if (!(o.verify_fraction == -1 || (o.verify_fraction >= 0 && o.verify_fraction <= sched::kMaxVerifyFraction)))
    throw core::Error("iogrid: option verify_fraction is a share between 0 and 1 (or -1: the default), got " +
                      std::to_string(o.verify_fraction));
  if (!(o.verify_tolerance >= 0) || !std::isfinite(o.verify_tolerance))
    throw core::Error("iogrid: option verify_tolerance must be a non-negative number, got " + std::to_string(o.verify_tolerance));
  return common_request(o.needs);
}
sched::ResourceRequest to_request(const core::ActorOptions& o) { return common_request(o.needs); }

bool TaskSubmitter::run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx,
                               const std::function<bool(const sched::ResourceRequest&)>& fits) {
  std::vector<std::shared_ptr<ShapeQueue>> candidates;
  {
    std::lock_guard<std::mutex> g(m_);
    for (const auto& [key, q] : shapes_)
      if (fits(q->request())) candidates.push_back(q);
  }
  for (const auto& q : candidates)
    if (q->run_inline(e, ctx)) return true;
  return false;
}

TaskSubmitter::TaskSubmitter(Hooks hooks, std::chrono::milliseconds lease_idle)
    : hooks_(std::move(hooks)), lease_idle_(lease_idle), verify_default_(hooks_.verify_fraction),
      checker_(*this, hooks_.check_seed) {}

TaskSubmitter::~TaskSubmitter() { shutdown(); }

std::shared_ptr<const core::ErrorInfo> TaskSubmitter::stopped_error() {
  static const auto e = std::make_shared<const core::ErrorInfo>(
      core::ErrorInfo{core::ErrorKind::runtime_stopped, "", "", "iogrid: the runtime was shut down before this task ran"});
  return e;
}

bool TaskSubmitter::stopped() const {
  std::lock_guard<std::mutex> g(m_);
  return stopped_;
}

std::shared_ptr<ShapeQueue> TaskSubmitter::shape_for(const sched::ResourceRequest& req) {
  auto key = req.key();
  std::lock_guard<std::mutex> g(m_);
  auto it = shapes_.find(key);
  if (it != shapes_.end()) return it->second;
  auto q = std::make_shared<ShapeQueue>(*this, static_cast<std::uint32_t>(shapes_.size()), req, lease_idle_);
  if (stopped_) q->close();
  shapes_.emplace(std::move(key), q);
  return q;
}

std::shared_ptr<const core::ErrorInfo> TaskSubmitter::failed_arg(const core::TaskSpec& spec) {
  for (const auto& d : spec.deps)
    if (d->state.load(std::memory_order_acquire) == core::ObjectState::failed) return core::passed_through(d->error);
  return nullptr;
}

void TaskSubmitter::when_args_ready(core::TaskSpec* spec, std::function<void(core::TaskSpec*)> then) {
  std::vector<core::ObjectEntry*> waits;
  for (const auto& d : spec->deps) waits.push_back(d.get());
  if (hooks_.wait_for_contained)
    for (const auto& t : spec->contained) waits.push_back(static_cast<core::ObjectEntry*>(t.get()));
  bool all_done = true;
  for (auto* d : waits)
    if (!d->done()) all_done = false;
  if (all_done) {
    then(spec);
    return;
  }
  // One count per dependency plus one held while registering, so `then` runs exactly once, after the last
  // dependency. Every dependency is registered (on_done runs at once for one that is already done): counting
  // only the pending ones would race with a dependency completing between the count and its registration.
  spec->unresolved.store(static_cast<int>(waits.size()) + 1, std::memory_order_relaxed);
  auto shared_then = std::make_shared<std::function<void(core::TaskSpec*)>>(std::move(then));
  for (auto* d : waits)
    d->on_done([spec, shared_then] {
      if (spec->unresolved.fetch_sub(1, std::memory_order_acq_rel) == 1) (*shared_then)(spec);
    });
  if (spec->unresolved.fetch_sub(1, std::memory_order_acq_rel) == 1) (*shared_then)(spec);
}

void TaskSubmitter::submit(std::unique_ptr<core::TaskSpec> owned, const core::TaskOptions& opts) {
  auto req = to_request(opts);
  auto queue = shape_for(req);
  owned->shape = queue->id();
  owned->max_retries = opts.max_retries;
  owned->retry_exceptions = opts.retry_exceptions;
  owned->verify_fraction = static_cast<float>(opts.verify_fraction >= 0 ? opts.verify_fraction : verify_default());
  owned->verify_tolerance = opts.verify_tolerance;
  stats_.submitted(*owned);
  auto* spec = owned.release();
  when_args_ready(spec, [this, queue](core::TaskSpec* s) {
    if (auto err = failed_arg(*s)) return fail(s, err);
    queue->push(s);
  });
}

std::shared_ptr<ActorRecord> TaskSubmitter::create_actor(std::unique_ptr<core::TaskSpec> ctor,
                                                         const core::ActorOptions& opts) {
  if (opts.max_restarts < -1) throw core::Error("iogrid: option max_restarts must be >= -1");
  if (opts.max_task_retries < -1) throw core::Error("iogrid: option max_task_retries must be >= -1");
  auto req = to_request(opts);
  auto rec = std::make_shared<ActorRecord>(*this, std::move(ctor), opts, std::move(req));
  {
    std::lock_guard<std::mutex> g(m_);
    if (stopped_) throw core::RuntimeError("iogrid: the runtime is shutting down");
    actors_.push_back(rec);
  }
  rec->start();
  return rec;
}

void TaskSubmitter::store_value(core::ObjectEntry* entry, core::MutableBufferPtr value,
                                std::vector<std::shared_ptr<void>> contained, std::uint32_t node) {
  auto size = value->size();
  if (size <= core::kMaxInlineValueBytes) {
    entry->complete_value(std::move(value), nullptr, size, std::move(contained));
    return;
  }
  auto store = hooks_.store_of(node);
  try {
    store->put(entry->id, value);
  } catch (const core::Error& e) {
    entry->complete_error(std::make_shared<const core::ErrorInfo>(
        core::ErrorInfo{core::ErrorKind::store_full, "", store->node_name(), e.what()}));
    return;
  }
  if (!entry->complete_value(nullptr, store, size, std::move(contained))) store->erase(entry->id);
}

void TaskSubmitter::fail(core::TaskSpec* spec, std::shared_ptr<const core::ErrorInfo> error) {
  if (spec->check) return checker_.run_failed(spec, error ? error->message : std::string("failed"));
  // A failure that names no task (a lease that could not be had) names the task it stops.
  if (error && error->kind == core::ErrorKind::task_failed && error->task_name.empty()) {
    auto named = std::make_shared<core::ErrorInfo>(*error);
    named->task_name = spec->name;
    error = std::move(named);
  }
  if (spec->kind != core::TaskKind::actor_create) {
    const bool passed_on = error && !error->task_name.empty() && error->task_name != spec->name;
    stats_.ended(*spec, error ? error->node : std::string(), false, error ? error->message : std::string("failed"),
                 passed_on ? error->task_name : std::string());
  }
  spec->result->complete_error(std::move(error));
  delete spec;
}

void TaskSubmitter::complete(core::TaskSpec* spec, worker::Outcome&& out, const worker::WorkerContext& ctx,
                             const std::function<void(core::TaskSpec*)>& retry) {
  if (spec->check) return checker_.run_finished(spec, std::move(out), ctx);
  auto* entry = spec->result.get();
  if (out.failed) {
    if (spec->retry_exceptions && spec->attempt < spec->max_retries && !entry->done() && retry) {
      ++spec->attempt;
      stats_.retried(*spec);
      retry(spec);
      return;
    }
    if (out.root) return fail(spec, std::move(out.root));  // a dependency's failure, passed on once
    auto msg = out.error;
    if (spec->attempt > 0) msg += " (after " + std::to_string(spec->attempt + 1) + " attempts)";
    fail(spec, std::make_shared<const core::ErrorInfo>(
                   core::ErrorInfo{core::ErrorKind::task_failed, spec->name, ctx.node_name, std::move(msg)}));
    return;
  }
  if (!entry->done() && checker_.sample(*spec)) return checker_.start(spec, std::move(out), ctx);
  if (!entry->done() && out.location && spec->kind == core::TaskKind::normal && retry && hooks_.new_entry)
    if (auto* la = dynamic_cast<LineageAware*>(out.location.get())) la->set_lineage(recipe(*spec, retry));
  deliver(spec, std::move(out), ctx);
}

void TaskSubmitter::deliver(core::TaskSpec* spec, worker::Outcome&& out, const worker::WorkerContext& ctx) {
  auto* entry = spec->result.get();
  if (!entry->done() && out.location) {
    entry->complete_value(nullptr, std::move(out.location), out.location_size, std::move(out.contained));
  }
  else if (!entry->done() && out.value) store_value(entry, std::move(out.value), std::move(out.contained), ctx.node_index);
  stats_.ended(*spec, ctx.node_name, true, "", "");
  delete spec;
}

Recompute TaskSubmitter::recipe(const core::TaskSpec& spec, std::function<void(core::TaskSpec*)> push) {
  struct Recipe {
    const core::FunctionInfo* fn;
    std::string name, args;
    std::vector<core::RefHandle> deps;
    std::vector<std::shared_ptr<void>> contained;
    std::uint32_t shape;
    int max_retries;
    bool retry_exceptions;
  };
  auto r = std::make_shared<Recipe>();
  r->fn = spec.fn;
  r->name = spec.name;
  r->args = spec.args;
  for (const auto& d : spec.deps) r->deps.push_back(core::RefHandle::share(d.get()));
  r->contained = spec.contained;
  r->shape = spec.shape;
  r->max_retries = spec.max_retries;
  r->retry_exceptions = spec.retry_exceptions;
  return [this, r, push = std::move(push)](std::function<void(core::RefHandle)> done) {
    auto s = new core::TaskSpec();
    s->kind = core::TaskKind::normal;
    s->fn = r->fn;
    s->name = r->name;
    s->args = r->args;
    for (const auto& d : r->deps) s->deps.push_back(core::RefHandle::share(d.get()));
    s->contained = r->contained;
    s->shape = r->shape;
    s->max_retries = r->max_retries;
    s->retry_exceptions = r->retry_exceptions;
    s->result = hooks_.new_entry();
    auto result = core::RefHandle::share(s->result.get());
    auto* raw = result.get();
    raw->on_done([done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
    if (stopped()) return fail(s, stopped_error());
    push(s);
  };
}

void TaskSubmitter::push_check(core::TaskSpec* run, const std::vector<std::string>& avoid) {
  std::optional<sched::ResourceRequest> req;
  {
    std::lock_guard<std::mutex> g(m_);
    for (const auto& [key, q] : shapes_)
      if (q->id() == run->shape) req = q->request();
  }
  if (!req || stopped()) return fail(run, stopped_error());
  req->node.clear();  // a task pinned to a node is checked elsewhere
  req->avoid_nodes = avoid;
  auto queue = shape_for(*req);
  run->shape = queue->id();
  queue->push(run);
}

void TaskSubmitter::shutdown() {
  std::unordered_map<std::string, std::shared_ptr<ShapeQueue>> shapes;
  std::vector<std::weak_ptr<ActorRecord>> actors;
  {
    std::lock_guard<std::mutex> g(m_);
    if (stopped_) return;
    stopped_ = true;
    shapes = shapes_;
    actors.swap(actors_);
  }
  for (auto& [k, q] : shapes) {
    q->close();
    q->fail_all(stopped_error());
  }
  for (auto& w : actors)
    if (auto a = w.lock()) a->shutdown(stopped_error());
}

}  // namespace iogrid::runtime
