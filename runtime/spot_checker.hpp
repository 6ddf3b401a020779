// SpotChecker: the owner's side of spot checks (scheduler/spot_check.hpp has the rules). When a task that asks
// for checks finishes, the owner draws whether to check it; a checked task's result is held back while the same
// task runs again on another provider (and a third when the two disagree); then the result that stands completes
// the task, and the outcome (which providers agreed, which one disagreed) goes to TaskStats, whose report takes it
// to the head (reputation, the ledger).
// Threads: the draws are a counter; reading results (a large one is fetched from where it lies), comparing and
// completing run on the checker's own thread, never on the thread that reported the outcome (in cluster mode the
// connection's thread, which a fetch through the relay or a lineage rebuild needs).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "iogrid/core/task_spec.hpp"
#include "worker/work_source.hpp"

namespace iogrid::runtime {

class TaskSubmitter;

class SpotChecker {
 public:
  // `seed` 0: a random seed.
  SpotChecker(TaskSubmitter& owner, std::uint64_t seed);
  ~SpotChecker();  // finishes the work posted so far
  SpotChecker(const SpotChecker&) = delete;
  SpotChecker& operator=(const SpotChecker&) = delete;

  // Whether this successful run of `spec` is checked (draws only for tasks that ask for checks).
  bool sample(const core::TaskSpec& spec);
  // Holds `spec` and its first outcome, and runs it again elsewhere.
  void start(core::TaskSpec* spec, worker::Outcome&& first, const worker::WorkerContext& ctx);
  // A check's own run ended (spec->check set): it succeeded or failed.
  void run_finished(core::TaskSpec* run, worker::Outcome&& out, const worker::WorkerContext& ctx);
  void run_failed(core::TaskSpec* run, const std::string& why);

  std::uint64_t draws() const { return draws_.load(std::memory_order_relaxed); }

  struct Check;

 private:
  void post(std::function<void()> job);
  void begin(core::TaskSpec* spec, worker::Outcome&& first, const worker::WorkerContext& ctx);
  void ended(core::TaskSpec* run, worker::Outcome&& out, const worker::WorkerContext& ctx);
  void launch(const std::shared_ptr<Check>& c);
  void compared(const std::shared_ptr<Check>& c);
  void finish(const std::shared_ptr<Check>& c, int stands, const std::string& why);
  TaskSubmitter& owner_;
  std::uint64_t seed_;
  std::atomic<std::uint64_t> draws_{0};
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // started with the first check
};

}  // namespace iogrid::runtime
