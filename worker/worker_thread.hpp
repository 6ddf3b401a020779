// WorkerThread: the OS thread a worker runs user code on. User code never runs on the actor
// scheduler's threads, so a task that blocks (in get, in I/O) never stalls the control plane.
// It serves one lease at a time: takes specs from a WorkSource until it returns nullptr. A task that waits for
// a child not started yet runs it inline (WorkSource::run_inline), up to kMaxInlineDepth deep.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "iogrid/core/wait.hpp"
#include "worker/work_source.hpp"

namespace iogrid::worker {

class WorkerThread final : public core::BlockingObserver, public core::InlineRunner {
 public:
  struct Hooks {
    std::function<void()> on_end;        // the lease ran dry
    std::function<void()> on_block;      // the running task parked in get/wait
    std::function<void()> on_unblock;
    std::vector<std::pair<std::uint32_t, double>> gpus;  // the lease's GPUs (device, fraction)
  };
  static constexpr int kMaxInlineDepth = 64;  // deeper waits park (a stack holds this many task frames)
  explicit WorkerThread(WorkerContext ctx);
  ~WorkerThread() override;  // finishes the task in hand, then joins
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Serves `src` until it runs dry; then `on_end` runs on the worker thread. One lease at a time.
  void serve(std::shared_ptr<WorkSource> src, Hooks hooks);
  void stop();
  const WorkerContext& context() const { return ctx_; }

 private:
  void loop();
  WorkerContext ctx_;
  std::mutex m_;
  std::condition_variable cv_;
  std::shared_ptr<WorkSource> src_;
  Hooks hooks_;
  WorkSource* current_ = nullptr;  // the lease being served (worker thread only)
  void blocked() override;
  void unblocked() override;
  bool run_inline(core::ObjectEntry* e) override;
  int inline_depth_ = 0;  // tasks run inline on top of each other right now (bounded: kMaxInlineDepth)
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace iogrid::worker
