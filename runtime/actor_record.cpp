#include "runtime/actor_record.hpp"

#include "iogrid/core/errors.hpp"
#include "iogrid/core/spin.hpp"
#include "runtime/task_submitter.hpp"

namespace iogrid::runtime {

namespace {
std::shared_ptr<const core::ErrorInfo> died(const std::string& actor, const std::string& why) {
  return std::make_shared<const core::ErrorInfo>(
      core::ErrorInfo{core::ErrorKind::actor_died, actor, "", "iogrid: actor '" + actor + "' " + why});
}
}  // namespace

// ---- ActorMailbox ----

ActorMailbox::ActorMailbox(std::shared_ptr<ActorRecord> rec, core::TaskSpec* ctor)
    : rec_(std::move(rec)), ctor_(ctor) {}

void ActorMailbox::push(core::TaskSpec* spec, bool front) {
  std::shared_ptr<const core::ErrorInfo> dead;
  bool wake = false;
  {
    std::lock_guard<std::mutex> g(m_);
    if (dead_) {
      dead = dead_;
    } else {
      if (front) q_.push_front(spec);
      else q_.push_back(spec);
      size_.store(q_.size(), std::memory_order_release);
      wake = parked_;
    }
  }
  if (dead) return rec_->owner().fail(spec, dead);
  if (wake) cv_.notify_one();
}

void ActorMailbox::kill(std::shared_ptr<const core::ErrorInfo> why) {
  std::deque<core::TaskSpec*> drop;
  {
    std::lock_guard<std::mutex> g(m_);
    if (!dead_) dead_ = why;
    drop.swap(q_);
    size_.store(0, std::memory_order_release);
    ended_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto* s : drop) rec_->owner().fail(s, s == cut_off_ ? cut_off_error_ : why);
}

std::deque<core::TaskSpec*> ActorMailbox::end_for_restart(std::shared_ptr<const core::ErrorInfo> why,
                                                          const std::function<bool(core::TaskSpec*)>& may_retry) {
  std::deque<core::TaskSpec*> queued;
  {
    std::lock_guard<std::mutex> g(m_);
    if (!dead_) dead_ = why;
    queued.swap(q_);
    size_.store(0, std::memory_order_release);
    ended_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  std::deque<core::TaskSpec*> again;
  for (auto* s : queued) {
    if (may_retry(s)) again.push_back(s);
    else rec_->owner().fail(s, s == cut_off_ ? cut_off_error_ : why);
  }
  return again;
}

void ActorMailbox::close_when_drained() {
  {
    std::lock_guard<std::mutex> g(m_);
    draining_ = true;
    if (q_.empty() && !ctor_pending_) ended_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

core::TaskSpec* ActorMailbox::next(const worker::WorkerContext&) {
  {
    std::lock_guard<std::mutex> g(m_);
    if (ctor_pending_ && !dead_) return ctor_;
  }
  core::spin_for([this] { return size_.load(std::memory_order_acquire) > 0 || ended_.load(std::memory_order_acquire); },
           core::kWorkerSpin);
  std::unique_lock<std::mutex> g(m_);
  parked_ = true;
  cv_.wait(g, [this] { return !q_.empty() || ended_.load(std::memory_order_acquire) || (draining_ && q_.empty()); });
  parked_ = false;
  if (q_.empty() || dead_) return nullptr;
  auto* s = q_.front();
  q_.pop_front();
  size_.store(q_.size(), std::memory_order_release);
  g.unlock();
  rec_->owner().stats().started(*s);
  return s;
}

void ActorMailbox::finish(core::TaskSpec* spec, worker::Outcome&& out, const worker::WorkerContext& ctx) {
  if (spec == ctor_) {
    std::shared_ptr<const core::ErrorInfo> failed;
    {
      std::lock_guard<std::mutex> g(m_);
      ctor_pending_ = false;
      if (out.failed) failed = died(rec_->name(), "failed in its constructor on node '" + ctx.node_name + "': " + out.error);
      else instance_ = out.instance;
      if (draining_ && q_.empty()) ended_.store(true, std::memory_order_release);
    }
    if (failed) rec_->incarnation_failed(this, failed);
    else rec_->constructed(this, ctx.node_name);
    return;
  }
  rec_->owner().complete(spec, std::move(out), ctx, nullptr);
}

void ActorMailbox::lease_ended(const worker::WorkerContext&) {
  void* inst = nullptr;
  {
    std::lock_guard<std::mutex> g(m_);
    inst = instance_;
    instance_ = nullptr;
  }
  if (inst) ctor_->fn->destroy(inst);
  // Whatever is still queued (a kill raced with the last call) fails.
  kill(died(rec_->name(), "has stopped"));
  rec_->incarnation_ended(this);  // the record lets go of this mailbox: no reference cycle remains
}

void ActorMailbox::lost(core::TaskSpec* spec, const worker::WorkerContext& ctx, const std::string& why) {
  if (spec == ctor_) {
    {
      std::lock_guard<std::mutex> g(m_);
      ctor_pending_ = false;
    }
  } else {
    // Back to the front of the queue: if the actor restarts and the call has retries left, it runs first on
    // the next incarnation; otherwise it fails with the others.
    auto err = died(rec_->name(), "lost its worker on node '" + ctx.node_name + "' while running this call: " + why);
    bool kept = false;
    {
      std::lock_guard<std::mutex> g(m_);
      if (!dead_) {
        q_.push_front(spec);
        size_.store(q_.size(), std::memory_order_release);
        cut_off_ = spec;
        cut_off_error_ = err;
        kept = true;
      }
    }
    // Already ended (its lease was lost before this call's loss was reported): the record decides.
    if (!kept) rec_->call_cut_off(this, spec, err);
  }
  rec_->worker_lost(this, "lost its worker on node '" + ctx.node_name + "': " + why);
}

void ActorMailbox::lease_lost(const worker::WorkerContext& ctx, const std::string& why) {
  rec_->worker_lost(this, "lost its worker on node '" + ctx.node_name + "': " + why);
}

void ActorMailbox::lease_failed(std::shared_ptr<const core::ErrorInfo> error) {
  rec_->incarnation_failed(this, error);
}

// ---- ActorRecord ----

ActorRecord::ActorRecord(TaskSubmitter& owner, std::unique_ptr<core::TaskSpec> ctor, core::ActorOptions opts,
                         sched::ResourceRequest req)
    : owner_(owner), ctor_(std::move(ctor)), opts_(std::move(opts)), req_(std::move(req)) {
  stats_id_ = owner_.stats().actor_created(name());
}

ActorRecord::~ActorRecord() {
  for (auto* s : waiting_) owner_.fail(s, died(name(), "is gone"));
}

void ActorRecord::start() {
  // The constructor's ObjectRef arguments must exist before the actor is placed.
  auto self = shared_from_this();
  auto* ctor = ctor_.get();
  owner_.when_args_ready(ctor, [self](core::TaskSpec* c) {
    std::lock_guard<std::mutex> g(self->m_);
    if (self->dead_) return;
    if (auto err = TaskSubmitter::failed_arg(*c)) {
      self->dead_ = err;
      self->report_dead_locked();
      return;
    }
    self->start_incarnation_locked();
    self->drain_waiting_locked();
  });
}

void ActorRecord::start_incarnation_locked() {
  mailbox_ = std::make_shared<ActorMailbox>(shared_from_this(), ctor_.get());
  if (handles_gone_) mailbox_->close_when_drained();
  owner_.request_lease(LeaseRequest{req_, mailbox_, mailbox_});
}

void ActorRecord::drain_waiting_locked() {
  while (!waiting_.empty() && mailbox_) {
    auto* s = waiting_.front();
    bool ready = true;
    for (const auto& d : s->deps)
      if (!d->done()) {
        ready = false;
        break;
      }
    if (!ready) return;
    waiting_.pop_front();
    if (auto err = TaskSubmitter::failed_arg(*s)) owner_.fail(s, err);
    else mailbox_->push(s);
  }
}

void ActorRecord::submit(core::TaskSpec* spec) {
  owner_.stats().submitted(*spec);
  std::unique_lock<std::mutex> g(m_);
  if (dead_) {
    auto err = dead_;
    g.unlock();
    return owner_.fail(spec, err);
  }
  // One look at the dependencies decides both whether the call can go now and which ones to wait for: looking
  // twice could miss one that finished in between (its completion would then drain nothing).
  std::vector<core::ObjectEntry*> pending;
  for (const auto& d : spec->deps)
    if (!d->done()) pending.push_back(d.get());
  if (waiting_.empty() && pending.empty() && mailbox_) {
    if (auto err = TaskSubmitter::failed_arg(*spec)) {
      g.unlock();
      return owner_.fail(spec, err);
    }
    mailbox_->push(spec);
    return;
  }
  waiting_.push_back(spec);
  g.unlock();
  std::weak_ptr<ActorRecord> weak = shared_from_this();
  for (auto* d : pending)
    d->on_done([weak] {
      if (auto self = weak.lock()) {
        std::lock_guard<std::mutex> gg(self->m_);
        self->drain_waiting_locked();
      }
    });
}

void ActorRecord::kill(bool no_restart) { end_incarnation(nullptr, no_restart, "was killed"); }

void ActorRecord::worker_lost(ActorMailbox* mb, const std::string& why) { end_incarnation(mb, false, why); }

void ActorRecord::end_incarnation(ActorMailbox* only, bool no_restart, const std::string& why) {
  std::shared_ptr<ActorMailbox> old;
  {
    std::lock_guard<std::mutex> g(m_);
    if (dead_) return;
    if (only && mailbox_.get() != only) return;  // an older incarnation
    old = mailbox_;
    bool restart = !no_restart && (opts_.max_restarts < 0 || restarts_ < opts_.max_restarts);
    if (restart) {
      ++restarts_;
      std::deque<core::TaskSpec*> again;
      if (old)
        again = old->end_for_restart(died(name(), why + " and is restarting (restart " + std::to_string(restarts_) + ")"),
                                     [this](core::TaskSpec* s) { return may_retry(s); });
      owner_.stats().actor_changed(stats_id_, "restarting", "", restarts_, why);
      start_incarnation_locked();
      for (auto* s : again) mailbox_->push(s);  // ahead of the calls still waiting for arguments: order kept
      drain_waiting_locked();
      return;
    }
    dead_ = died(name(), no_restart ? why : why + " and has no restarts left");
    report_dead_locked();
    mailbox_.reset();
  }
  if (old) old->kill(dead_);
  std::deque<core::TaskSpec*> drop;
  {
    std::lock_guard<std::mutex> g(m_);
    drop.swap(waiting_);
  }
  for (auto* s : drop) owner_.fail(s, dead_);
}

void ActorRecord::call_cut_off(ActorMailbox* from, core::TaskSpec* spec, std::shared_ptr<const core::ErrorInfo> why) {
  std::unique_lock<std::mutex> g(m_);
  if (!dead_ && mailbox_ && mailbox_.get() != from && may_retry(spec)) {
    mailbox_->push(spec, /*front=*/true);  // the next incarnation runs it first (after its constructor)
    return;
  }
  g.unlock();
  owner_.fail(spec, why);
}

bool ActorRecord::may_retry(core::TaskSpec* call) const {
  if (opts_.max_task_retries >= 0 && call->attempt >= opts_.max_task_retries) return false;
  ++call->attempt;
  return true;
}

void ActorRecord::incarnation_failed(ActorMailbox* mb, std::shared_ptr<const core::ErrorInfo> why) {
  std::deque<core::TaskSpec*> drop;
  std::shared_ptr<ActorMailbox> old;
  {
    std::lock_guard<std::mutex> g(m_);
    if (mailbox_.get() != mb) return;  // an old incarnation
    old = mailbox_;
    mailbox_.reset();
    if (!dead_) dead_ = why;
    report_dead_locked();
    drop.swap(waiting_);
  }
  old->kill(why);
  for (auto* s : drop) owner_.fail(s, why);
}

void ActorRecord::incarnation_ended(ActorMailbox* mb) {
  std::lock_guard<std::mutex> g(m_);
  if (mailbox_.get() != mb) return;
  mailbox_.reset();
  if (!dead_) dead_ = died(name(), "has stopped (all handles were dropped)");
  report_dead_locked();
}

void ActorRecord::constructed(ActorMailbox* mb, const std::string& node) {
  std::lock_guard<std::mutex> g(m_);
  if (mailbox_.get() != mb || dead_) return;
  node_ = node;
  owner_.stats().actor_changed(stats_id_, "alive", node_, restarts_);
}

void ActorRecord::report_dead_locked() {
  if (reported_dead_ || !dead_) return;
  reported_dead_ = true;
  owner_.stats().actor_changed(stats_id_, "dead", node_, restarts_, dead_->message);
}

void ActorRecord::handles_dropped() {
  std::lock_guard<std::mutex> g(m_);
  handles_gone_ = true;
  if (mailbox_) mailbox_->close_when_drained();
}

void ActorRecord::shutdown(std::shared_ptr<const core::ErrorInfo> why) {
  std::shared_ptr<ActorMailbox> old;
  std::deque<core::TaskSpec*> drop;
  {
    std::lock_guard<std::mutex> g(m_);
    if (!dead_) dead_ = why;
    report_dead_locked();
    old = mailbox_;
    mailbox_.reset();
    drop.swap(waiting_);
  }
  if (old) old->kill(why);
  for (auto* s : drop) owner_.fail(s, why);
}

}  // namespace iogrid::runtime
