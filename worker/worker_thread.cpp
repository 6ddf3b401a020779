#include "worker/worker_thread.hpp"

#include "gpu/memory.hpp"
#include "worker/executor.hpp"

namespace iogrid::worker {

namespace {
thread_local const WorkerContext* t_context = nullptr;
}

const WorkerContext* current_context() { return t_context; }

WorkerThread::WorkerThread(WorkerContext ctx) : ctx_(std::move(ctx)), thread_([this] { loop(); }) {}

WorkerThread::~WorkerThread() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void WorkerThread::serve(std::shared_ptr<WorkSource> src, Hooks hooks) {
  {
    std::lock_guard<std::mutex> g(m_);
    src_ = std::move(src);
    hooks_ = std::move(hooks);
  }
  cv_.notify_one();
}

void WorkerThread::stop() {
  {
    std::lock_guard<std::mutex> g(m_);
    stop_ = true;
  }
  cv_.notify_one();
}

void WorkerThread::blocked() {
  if (current_) current_->worker_blocked();
  if (hooks_.on_block) hooks_.on_block();
}

void WorkerThread::unblocked() {
  if (hooks_.on_unblock) hooks_.on_unblock();
  if (current_) current_->worker_unblocked();
}

bool WorkerThread::run_inline(core::ObjectEntry* e) {
  if (!current_ || inline_depth_ >= kMaxInlineDepth) return false;
  ++inline_depth_;
  const bool ran = current_->run_inline(e, ctx_);
  --inline_depth_;
  return ran;
}

void WorkerThread::loop() {
  t_context = &ctx_;
  core::set_blocking_observer(this);
  core::set_inline_runner(this);
  for (;;) {
    std::shared_ptr<WorkSource> src;
    std::function<void()> on_end;
    {
      std::unique_lock<std::mutex> g(m_);
      cv_.wait(g, [&] { return stop_ || src_; });
      if (!src_) return;  // stopped while idle
      src = std::move(src_);
      on_end = hooks_.on_end;
      ctx_.gpus = hooks_.gpus;  // what the tasks of this lease see as theirs
      src_.reset();
    }
    // The worker binds its lease's GPU: CUDA calls of the tasks go to that device by default.
    // A fraction of a device caps the memory its tasks may allocate through iogrid (Tensor) at that fraction.
    if (!ctx_.gpus.empty()) {
      const int device = static_cast<int>(ctx_.gpus.front().first);
      gpu::select_device(device);
      gpu::set_thread_memory_share(device, ctx_.gpus.front().second);
    } else {
      gpu::set_thread_memory_share(-1, 0);
    }
    current_ = src.get();
    while (auto* spec = src->next(ctx_)) {
      auto outcome = execute(*spec, src->self());
      src->finish(spec, std::move(outcome), ctx_);
    }
    src->lease_ended(ctx_);
    current_ = nullptr;
    src.reset();
    if (on_end) on_end();
    std::lock_guard<std::mutex> g(m_);
    if (stop_) return;
  }
}

}  // namespace iogrid::worker
