#include "runtime/shape_queue.hpp"

#include "iogrid/core/spin.hpp"
#include "runtime/task_submitter.hpp"
#include "worker/executor.hpp"

namespace iogrid::runtime {

ShapeQueue::ShapeQueue(TaskSubmitter& owner, std::uint32_t id, sched::ResourceRequest req,
                       std::chrono::milliseconds idle)
    : owner_(owner), id_(id), req_(std::move(req)), idle_(idle) {}

void ShapeQueue::push(core::TaskSpec* spec) {
  bool need_lease = false, wake = false;
  std::shared_ptr<const core::ErrorInfo> failed;
  {
    std::lock_guard<std::mutex> g(m_);
    // A request refused as infeasible fails what follows at once for a moment (a burst of such tasks asks the
    // head once), then the head is asked again: nodes join and come back, reservations are made.
    if (failed_ && std::chrono::steady_clock::now() - failed_at_ > kRefusalMemory) failed_.reset();
    if (failed_ || closed_) {
      failed = failed_ ? failed_ : TaskSubmitter::stopped_error();
    } else {
      q_.push_back(spec);
      size_.store(q_.size(), std::memory_order_release);
      wake = parked_ > 0;
      need_lease = claim_lease_request_locked();
    }
  }
  if (failed) return owner_.fail(spec, failed);
  if (wake) cv_.notify_one();
  if (need_lease) owner_.request_lease(LeaseRequest{req_, shared_from_this(), shared_from_this()});
}

bool ShapeQueue::claim_lease_request_locked() {
  if (closed_ || static_cast<int>(q_.size()) <= active_leases_ + pending_leases_ || pending_leases_ >= kMaxPendingLeases)
    return false;
  ++pending_leases_;
  return true;
}

core::TaskSpec* ShapeQueue::pop_locked() {
  auto* s = q_.front();
  q_.pop_front();
  size_.store(q_.size(), std::memory_order_release);
  return s;
}

core::TaskSpec* ShapeQueue::next(const worker::WorkerContext&) {
  for (;;) {
    core::spin_for([this] { return size_.load(std::memory_order_acquire) > 0 || closed_; }, core::kWorkerSpin);
    std::unique_lock<std::mutex> g(m_);
    if (q_.empty() && !closed_) {
      ++parked_;
      cv_.wait_for(g, idle_, [this] { return !q_.empty() || closed_; });
      --parked_;
    }
    if (q_.empty()) {
      --active_leases_;
      return nullptr;  // idle too long, or closed: the lease ends
    }
    auto* s = pop_locked();
    g.unlock();
    if (s->result->done()) {  // cancelled while queued
      delete s;
      continue;
    }
    owner_.stats().started(*s);
    return s;
  }
}

void ShapeQueue::finish(core::TaskSpec* spec, worker::Outcome&& outcome, const worker::WorkerContext& ctx) {
  owner_.complete(spec, std::move(outcome), ctx, [self = shared_from_this()](core::TaskSpec* s) { self->push(s); });
}

void ShapeQueue::lost(core::TaskSpec* spec, const worker::WorkerContext& ctx, const std::string& why) {
  if (spec->attempt < spec->max_retries && !spec->result->done()) {
    ++spec->attempt;
    return push(spec);
  }
  auto msg = "iogrid: the worker running it was lost on node '" + ctx.node_name + "': " + why;
  if (spec->attempt > 0) msg += " (after " + std::to_string(spec->attempt + 1) + " attempts)";
  owner_.fail(spec, std::make_shared<const core::ErrorInfo>(
                        core::ErrorInfo{core::ErrorKind::task_failed, spec->name, ctx.node_name, std::move(msg)}));
}

void ShapeQueue::requeue(core::TaskSpec* spec, const worker::WorkerContext&) { push(spec); }

core::TaskSpec* ShapeQueue::take(core::ObjectEntry* e) {
  std::lock_guard<std::mutex> g(m_);
  // Newest first: the waiting task's own children were pushed last.
  for (auto it = q_.rbegin(); it != q_.rend(); ++it) {
    if ((*it)->result.get() != e) continue;
    auto* s = *it;
    q_.erase(std::next(it).base());
    size_.store(q_.size(), std::memory_order_release);
    return s;
  }
  return nullptr;
}

bool ShapeQueue::run_inline(core::ObjectEntry* e, const worker::WorkerContext& ctx) {
  auto* s = take(e);
  if (!s) return false;
  if (s->result->done()) {  // cancelled while queued
    delete s;
    return true;
  }
  finish(s, worker::execute(*s, nullptr), ctx);
  return true;
}

void ShapeQueue::lease_abandoned(const worker::WorkerContext&) { worker_blocked(); }

void ShapeQueue::worker_blocked() {
  bool need_lease = false;
  {
    std::lock_guard<std::mutex> g(m_);
    --active_leases_;
    need_lease = claim_lease_request_locked();
  }
  if (need_lease) owner_.request_lease(LeaseRequest{req_, shared_from_this(), shared_from_this()});
}

void ShapeQueue::worker_unblocked() {
  std::lock_guard<std::mutex> g(m_);
  ++active_leases_;
}

void ShapeQueue::lease_granted() {
  bool need_lease = false;
  {
    std::lock_guard<std::mutex> g(m_);
    --pending_leases_;
    ++active_leases_;
    // Tasks queued while every lease request was in flight still want workers.
    need_lease = claim_lease_request_locked();
  }
  if (need_lease) owner_.request_lease(LeaseRequest{req_, shared_from_this(), shared_from_this()});
}

void ShapeQueue::lease_failed(std::shared_ptr<const core::ErrorInfo> error) {
  {
    std::lock_guard<std::mutex> g(m_);
    --pending_leases_;
  }
  fail_all(std::move(error));
}

void ShapeQueue::fail_all(std::shared_ptr<const core::ErrorInfo> error) {
  std::deque<core::TaskSpec*> drop;
  {
    std::lock_guard<std::mutex> g(m_);
    if (!failed_) {
      failed_ = error;
      failed_at_ = std::chrono::steady_clock::now();
    }
    drop.swap(q_);
    size_.store(0, std::memory_order_release);
  }
  for (auto* s : drop) owner_.fail(s, error);
}

void ShapeQueue::close() {
  {
    std::lock_guard<std::mutex> g(m_);
    closed_ = true;
  }
  cv_.notify_all();
}

}  // namespace iogrid::runtime
