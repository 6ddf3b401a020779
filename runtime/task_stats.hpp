// TaskStats: what a job's owner knows of its tasks, for the dashboard (state counts by kind, a duration
// histogram, the latest spans for the timeline, failures with their root cause, its actors: state, restarts, node). The TaskSubmitter feeds it;
// a cluster driver reports it to the head each second (TaskReport), the embedded runtime shows it directly.
// Rules: a task is waiting from submission until a worker takes it (dispatched: in cluster mode, when it is
// sent to the worker process), running until its outcome arrives, then finished or failed; a retry makes it
// waiting again. The spans and failures kept are the latest kMaxSpans and kMaxFailures; counts are exact.
// An actor is pending from creation until its first constructor finished, alive while an incarnation is
// constructed, restarting from a lost incarnation until the next is constructed, dead for good after. A report
// carries the actors that changed since the previous one (the head keeps the rest); the dead ones kept here are
// the latest kMaxDeadActors once reported (counts by state are exact).
// Thread-safe: counters are atomics; spans, failures and actors take a mutex once per change.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "iogrid/core/task_spec.hpp"
#include "scheduler/spot_check.hpp"

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

// A spot check's outcome (runtime/spot_checker.hpp), as the head hears it.
struct CheckRecord {
  std::int64_t ts_ms = 0;
  std::string task;
  sched::CheckVerdict verdict = sched::CheckVerdict::unchecked;
  std::vector<std::string> agreed;     // agreed, settled: the providers whose results stand
  std::string disagreed;               // settled: the provider outvoted
  std::vector<std::string> providers;  // unsettled: the three providers
  std::string why;                     // unchecked / unsettled: why
  std::size_t extra_runs = 0;          // runs beyond the first
  nlohmann::json to_json() const;
  static CheckRecord from_json(const nlohmann::json& j);  // throws on a malformed record
};

struct ActorRow {
  std::string name, state, node, error;
  int restarts = 0;
  std::int64_t since_ms = 0;              // Unix milliseconds of the latest change of state
  std::uint64_t version = 0;
};

class TaskStats {
 public:
  static constexpr std::size_t kMaxDeadActors = 1000;
  static constexpr const char* kActorStates[] = {"pending", "alive", "restarting", "dead"};
  // What an owner has already reported: the next report carries what is newer.
  struct Cursor {
    std::int64_t spans_after_ms = 0;
    std::uint64_t actors_after = 0;
  };
  static constexpr std::size_t kMaxPendingChecks = 10000;  // kept for the next report; more are counted as dropped

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
  // ... and "actors": [[id, name, state, node, restarts, error, since_ms]] (those changed since `c`),
  // "actor_states": {state: count}. Advances `c` past what it carries.
  nlohmann::json report(Cursor& c, std::size_t max_spans = 5000) const;
  std::uint64_t changes() const { return changes_.load(std::memory_order_relaxed); }

  // An actor was created (pending): its id in this owner's reports.
  std::uint64_t actor_created(const std::string& name);
  // Its new state (one of kActorStates), the node of its incarnation, restarts so far, why it died.
  void actor_changed(std::uint64_t id, const char* state, const std::string& node, int restarts, const std::string& error = "");
  std::vector<std::pair<std::uint64_t, ActorRow>> actors() const;

  // A spot check ended: counted, and kept for the next report (`keep`; the embedded runtime sends it at once).
  void check_done(const CheckRecord& r, bool keep);
  // {"draws", "agreed", "settled", "unsettled", "unchecked", "extra_runs", "dropped"}
  nlohmann::json check_counts() const;
  struct CheckCounts {
    std::atomic<std::uint64_t> agreed{0}, settled{0}, unsettled{0}, unchecked{0}, extra_runs{0}, dropped{0};
  };
  const CheckCounts& checks() const { return checks_; }

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
  void prune_locked() const;
  mutable std::map<std::uint64_t, ActorRow> actors_;
  mutable std::deque<std::uint64_t> dead_actors_;  // oldest first
  std::array<std::uint64_t, 4> actor_counts_{};
  std::uint64_t next_actor_ = 1, actor_version_ = 0;
  mutable std::uint64_t reported_ = 0;             // the latest version a report carried
  CheckCounts checks_;
  mutable std::deque<CheckRecord> pending_checks_;  // taken by the next report
};

}  // namespace iogrid::runtime
