// SubmitterCore: the part of the SDK's Core that both runtimes share (embedded, and the cluster client of a
// driver): entries, task submission, puts and actors all go through one TaskSubmitter. A runtime derives
// from it, creates `submitter_` in its constructor, and adds what differs (refs inside values, where a put
// lands, which node the caller is on) and the runtime-level calls the SDK makes (nodes, KV, stop).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "iogrid/core/core.hpp"
#include "runtime/node_summary.hpp"
#include "runtime/actor_record.hpp"
#include "runtime/task_submitter.hpp"

namespace iogrid::runtime {

class SubmitterCore : public core::Core {
 public:
  core::RefHandle new_entry() override {
    return core::RefHandle::adopt(new core::ObjectEntry(next_id_.fetch_add(1, std::memory_order_relaxed)));
  }
  void submit(std::unique_ptr<core::TaskSpec> spec, const core::TaskOptions& opts) override {
    submitter_->submit(std::move(spec), opts);
  }
  core::RefHandle put(core::MutableBufferPtr value, std::vector<std::shared_ptr<void>> contained) override {
    auto h = new_entry();
    submitter_->store_value(h.get(), std::move(value), std::move(contained), put_node());
    if (h->state.load() == core::ObjectState::failed) core::throw_error(*h->error);
    return h;
  }
  void cancel(core::ObjectEntry* e) override {
    e->complete_error(std::make_shared<const core::ErrorInfo>(core::ErrorInfo{
        core::ErrorKind::cancelled, "", "", "iogrid: task producing object " + std::to_string(e->id) + " was cancelled"}));
  }
  std::shared_ptr<void> create_actor(std::unique_ptr<core::TaskSpec> ctor, const core::ActorOptions& opts) override {
    auto rec = submitter_->create_actor(std::move(ctor), opts);
    auto* raw = rec.get();
    return std::shared_ptr<void>(raw, [rec = std::move(rec)](void*) mutable {
      rec->handles_dropped();
      rec.reset();
    });
  }
  void submit_actor_call(const std::shared_ptr<void>& actor, std::unique_ptr<core::TaskSpec> spec) override {
    static_cast<ActorRecord*>(actor.get())->submit(spec.release());
  }
  void kill_actor(const std::shared_ptr<void>& actor, bool no_restart) override {
    static_cast<ActorRecord*>(actor.get())->kill(no_restart);
  }

  // Runs the queued task producing `e` on the calling worker thread if it fits (TaskSubmitter::run_inline).
  bool run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx,
                  const std::function<bool(const sched::ResourceRequest&)>& fits) {
    return submitter_->run_inline(e, ctx, fits);
  }

  // Spot checks so far (iogrid::spot_checks()).
  const TaskStats::CheckCounts& spot_check_counts() const { return submitter_->stats().checks(); }
  std::uint64_t spot_check_draws() const { return submitter_->check_draws(); }

  // What iogrid::nodes(), kv_put/kv_get and shutdown() ask of the running runtime.
  virtual std::vector<NodeSummary> describe() = 0;
  virtual void kv_put(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> kv_get(const std::string& key) = 0;
  // An operator command to the head (reservations, ledger; runtime/head/reservations.hpp): the answer's JSON, or
  // iogrid::Error with the head's reason.
  virtual std::string admin(const std::string& command, const std::string& args_json) = 0;
  virtual void stop() = 0;
  // The address peers on other machines reach this process at (iogrid::current_host()).
  virtual std::string advertised_host() const { return "127.0.0.1"; }

 protected:
  // Cluster mode: entry ids start at a random tag, so ids stay unique across the processes a ref visits.
  void set_id_base(std::uint64_t base) { next_id_.store(base, std::memory_order_relaxed); }
  // The node whose store takes a large put from the calling thread.
  virtual std::uint32_t put_node() const { return 0; }
  std::unique_ptr<TaskSubmitter> submitter_;

 private:
  std::atomic<std::uint64_t> next_id_{1};
};

}  // namespace iogrid::runtime
