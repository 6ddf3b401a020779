#include "runtime/spot_checker.hpp"

#include <cstring>
#include <random>

#include "runtime/task_submitter.hpp"
#include "scheduler/spot_check.hpp"

namespace iogrid::runtime {

struct SpotChecker::Check {
  core::TaskSpec* spec = nullptr;           // the user's task, held until the check settles
  worker::Outcome first;                    // its first outcome
  worker::WorkerContext first_ctx;
  std::vector<std::string> nodes;           // the providers of runs 0, 1, 2
  std::vector<std::uint32_t> node_index;
  std::vector<core::BufferPtr> results;     // their results' bytes
};

namespace {
// The bytes of a run's result: inline, or fetched from where the worker left it (then freed there when `erase`).
core::BufferPtr result_bytes(worker::Outcome& out, std::uint64_t id, bool erase) {
  if (out.value) return out.value;
  if (!out.location) return nullptr;
  auto b = out.location->fetch(id);
  if (erase) out.location->erase(id);
  return b;
}
}  // namespace

SpotChecker::SpotChecker(TaskSubmitter& owner, std::uint64_t seed) : owner_(owner), seed_(seed) {
  if (seed_ == 0) seed_ = (std::uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
}

bool SpotChecker::sample(const core::TaskSpec& spec) {
  if (spec.verify_fraction <= 0 || spec.kind != core::TaskKind::normal || spec.check) return false;
  const auto n = draws_.fetch_add(1, std::memory_order_relaxed);
  return sched::sample_check(spec.verify_fraction, sched::uniform_from(sched::splitmix64(seed_ + n)));
}

SpotChecker::~SpotChecker() {
  {
    std::lock_guard<std::mutex> g(m_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SpotChecker::post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> g(m_);
    jobs_.push_back(std::move(job));
    if (!thread_.joinable())
      thread_ = std::thread([this] {
        std::unique_lock<std::mutex> g(m_);
        for (;;) {
          cv_.wait(g, [this] { return stopping_ || !jobs_.empty(); });
          if (jobs_.empty()) return;  // stopping, and everything posted is done
          auto next = std::move(jobs_.front());
          jobs_.pop_front();
          g.unlock();
          next();
          g.lock();
        }
      });
  }
  cv_.notify_one();
}

void SpotChecker::start(core::TaskSpec* spec, worker::Outcome&& first, const worker::WorkerContext& ctx) {
  auto held = std::make_shared<worker::Outcome>(std::move(first));
  post([this, spec, held, ctx] { begin(spec, std::move(*held), ctx); });
}

void SpotChecker::run_finished(core::TaskSpec* run, worker::Outcome&& out, const worker::WorkerContext& ctx) {
  auto held = std::make_shared<worker::Outcome>(std::move(out));
  post([this, run, held, ctx] { ended(run, std::move(*held), ctx); });
}

void SpotChecker::begin(core::TaskSpec* spec, worker::Outcome&& first, const worker::WorkerContext& ctx) {
  auto c = std::make_shared<Check>();
  c->spec = spec;
  c->first = std::move(first);
  c->first_ctx = ctx;
  c->nodes.push_back(ctx.node_name);
  c->node_index.push_back(ctx.node_index);
  if (!c->first.contained.empty()) return finish(c, 0, "the result holds ObjectRefs (their ids differ run to run)");
  try {
    c->results.push_back(result_bytes(c->first, spec->result->id, false));
  } catch (const std::exception& e) {
    return finish(c, 0, std::string("the first result could not be read: ") + e.what());
  }
  if (!c->results.back()) return finish(c, 0, "the first run returned no value");
  launch(c);
}

void SpotChecker::launch(const std::shared_ptr<Check>& c) {
  auto* run = new core::TaskSpec();
  const auto& s = *c->spec;
  run->kind = core::TaskKind::normal;
  run->fn = s.fn;
  run->name = s.name;  // the same task, the same arguments: a provider cannot tell a check from ordinary work
  run->args = s.args;
  for (const auto& d : s.deps) run->deps.push_back(core::RefHandle::share(d.get()));
  run->contained = s.contained;
  run->shape = s.shape;
  run->max_retries = s.max_retries;  // a lost worker is retried like any task
  run->result = owner_.new_check_entry();
  run->check = c;
  owner_.stats().submitted(*run);  // a check's run is work like any other: counted, and on the timeline
  owner_.push_check(run, c->nodes);
}

void SpotChecker::ended(core::TaskSpec* run, worker::Outcome&& out, const worker::WorkerContext& ctx) {
  auto c = std::static_pointer_cast<Check>(run->check);
  owner_.stats().ended(*run, ctx.node_name, !out.failed, out.failed ? out.error : std::string(), "");
  if (out.failed) {
    const auto why = "a check's run failed on node '" + ctx.node_name + "': " + out.error;
    delete run;
    return finish(c, 0, why);
  }
  core::BufferPtr bytes;
  std::string error;
  try {
    bytes = result_bytes(out, run->result->id, true);
  } catch (const std::exception& e) {
    error = e.what();
  }
  delete run;
  if (!bytes) return finish(c, 0, "a check's result could not be read: " + error);
  c->nodes.push_back(ctx.node_name);
  c->node_index.push_back(ctx.node_index);
  c->results.push_back(std::move(bytes));
  compared(c);
}

void SpotChecker::run_failed(core::TaskSpec* run, const std::string& why) {
  post([this, run, why] {
    auto c = std::static_pointer_cast<Check>(run->check);
    owner_.stats().ended(*run, "", false, why, "");
    delete run;
    finish(c, 0, "no check could run: " + why);
  });
}

void SpotChecker::compared(const std::shared_ptr<Check>& c) {
  const auto& s = *c->spec;
  auto same = [&](std::size_t i, std::size_t j) {
    const auto& a = c->results[i];
    const auto& b = c->results[j];
    if (a->size() == b->size() && std::memcmp(a->data(), b->data(), a->size()) == 0) return true;
    return s.verify_tolerance > 0 && s.fn && s.fn->close && s.fn->close(a, b, s.verify_tolerance);
  };
  if (c->results.size() == 2) {
    if (same(0, 1)) return finish(c, 0, "");
    return launch(c);  // a mismatch: a third provider settles it
  }
  const int stands = sched::settle(same(0, 2), same(1, 2));
  finish(c, stands, stands < 0 ? "three providers returned three different results" : "");
}

void SpotChecker::finish(const std::shared_ptr<Check>& c, int stands, const std::string& why) {
  CheckRecord r;
  r.task = c->spec->name;
  const auto runs = c->results.size();
  if (runs < 2) r.verdict = sched::CheckVerdict::unchecked;
  else if (runs == 2) r.verdict = sched::CheckVerdict::agreed;
  else r.verdict = stands < 0 ? sched::CheckVerdict::unsettled : sched::CheckVerdict::settled;
  r.why = why;
  r.extra_runs = c->nodes.size() - 1;
  if (r.verdict == sched::CheckVerdict::agreed) r.agreed = {c->nodes[0], c->nodes[1]};
  if (r.verdict == sched::CheckVerdict::settled) {
    r.agreed = {c->nodes[static_cast<std::size_t>(stands)], c->nodes[2]};
    r.disagreed = c->nodes[stands == 0 ? 1 : 0];
  }
  if (r.verdict == sched::CheckVerdict::unsettled) r.providers = c->nodes;
  auto* spec = c->spec;
  c->spec = nullptr;
  owner_.checked(r);
  if (stands < 0) {
    if (c->first.location) c->first.location->erase(spec->result->id);
    const auto nodes = c->nodes[0] + ", " + c->nodes[1] + " and " + c->nodes[2];
    return owner_.fail(spec, std::make_shared<const core::ErrorInfo>(core::ErrorInfo{
                                 core::ErrorKind::task_failed, spec->name, c->nodes[0],
                                 "iogrid: a spot check found three different results (on " + nodes +
                                     "); is the task deterministic? (TaskOptions::verify_tolerance allows "
                                     "floating-point differences)"}));
  }
  if (stands == 0) return owner_.deliver(spec, std::move(c->first), c->first_ctx);
  // The first provider was outvoted: the result that stands is the second's, stored as the task's own.
  if (c->first.location) c->first.location->erase(spec->result->id);
  auto copy = core::make_buffer(c->results[1]->size());
  if (copy->size()) std::memcpy(copy->data(), c->results[1]->data(), copy->size());
  worker::Outcome agreed;
  agreed.value = std::move(copy);
  worker::WorkerContext ctx;
  ctx.node_name = c->nodes[1];
  ctx.node_index = c->node_index[1];
  owner_.deliver(spec, std::move(agreed), ctx);
}

}  // namespace iogrid::runtime
