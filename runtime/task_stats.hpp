// TaskStats: what a job's owner knows of its tasks, for the dashboard (state counts by kind, a duration
// histogram, the latest spans for the timeline, failures with their root cause). The TaskSubmitter feeds it;
// a cluster driver reports it to the head each second (TaskReport), the embedded runtime shows it directly.
// Rules: a task is waiting from submission until a worker takes it (dispatched: in cluster mode, when it is
// sent to the worker process), running until its outcome arrives, then finished or failed; a retry makes it
// waiting again. The spans and failures kept are the latest kMaxSpans and kMaxFailures; counts are exact.
// Thread-safe: counters are atomics; spans and failures take a mutex once per ended task.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "iogrid/core/task_spec.hpp"

namespace iogrid::runtime {

struct TaskSpan {
  std::string name, node;
  std::int64_t start_ms = 0, end_ms = 0;  // Unix milliseconds
  bool ok = true;
  std::uint8_t kind = 0;                  // core::TaskKind
};

struct TaskFailure {
  std::int64_t ts_ms = 0;
  std::string name, node, error;
  std::string root_task;                  // the task whose failure this one passed on (empty: its own)
};

class TaskStats {
 public:
  static constexpr std::size_t kMaxSpans = 20000;
  static constexpr std::size_t kMaxFailures = 200;
  // Upper bounds (seconds) of the duration histogram's buckets; the last is +Inf.
  static constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30};

  void submitted(const core::TaskSpec& spec);
  void started(core::TaskSpec& spec);    // stamps spec.started_us
  void retried(core::TaskSpec& spec);    // running -> waiting
  // The task ended (finished or failed, for good): its span and, when it failed, the failure.
  void ended(const core::TaskSpec& spec, const std::string& node, bool ok, const std::string& error,
             const std::string& root_task);

  // {"tasks": {kind: {waiting, running, finished, failed}}, "duration_buckets": [le..], "duration_counts": [...],
  //  "duration_sum_s", "spans": [[name, node, start_ms, end_ms, ok, kind]...], "failures": [...]}. `spans_after_ms`:
  // only spans that ended after it (a report sends what is new).
  nlohmann::json snapshot(std::int64_t spans_after_ms = 0, std::size_t max_spans = kMaxSpans) const;
  std::uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }

 private:
  struct Counts {
    std::atomic<std::uint64_t> submitted{0}, started{0}, finished{0}, failed{0}, failed_waiting{0};
  };
  std::array<Counts, 3> kinds_;
  std::array<std::atomic<std::uint64_t>, kBuckets.size() + 1> buckets_{};
  std::atomic<std::uint64_t> duration_sum_us_{0};
  std::atomic<std::uint64_t> changes_{0};
  mutable std::mutex m_;
  std::deque<TaskSpan> spans_;
  std::deque<TaskFailure> failures_;
};

}  // namespace iogrid::runtime
