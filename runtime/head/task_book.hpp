// TaskBook: the tasks of each job as its owners report them (TaskReport, runtime/task_stats.hpp): the head
// does not schedule tasks (owners do, on leased workers), so this is what it shows of them: counts by kind and
// state summed over a job's owners (the driver and workers submitting nested tasks), the duration histogram,
// the latest spans for the timeline, the latest failures with their root cause, and its actors (state, restarts,
// node: each owner reports the ones that changed).
// Rules: an owner's latest report replaces its counts (reports carry totals); spans and failures are appended,
// at most kSpansPerJob and kFailuresPerJob a job, and kSpansTotal over every job (the oldest job's go first).
// Actors are kept by (owner, id), the latest row replacing the one before; over kActorsPerJob the dead that
// died first go (live ones are always kept); the counts by state are the owners' own (exact).
// A malformed report is ignored (and said once in the log by the caller). Single-threaded (the head's thread).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace iogrid::runtime::head {

class TaskBook {
 public:
  static constexpr std::size_t kSpansPerJob = 20000;
  static constexpr std::size_t kSpansTotal = 200000;
  static constexpr std::size_t kFailuresPerJob = 200;
  static constexpr std::size_t kActorsPerJob = 10000;

  // Throws std::exception on a malformed report.
  void report(const std::string& job, std::uint64_t owner, const std::string& json);
  // {kind: {submitted, waiting, running, finished, failed}, duration: {buckets (upper bounds, s; +Inf after the
  // last), counts (per bucket, not cumulative), sum_s}}; null when the job reported nothing.
  nlohmann::json summary(const std::string& job) const;
  // {job, tasks: summary, spans (ended after `after_ms`, the latest `limit`): [name, node, start_ms, end_ms, ok,
  // kind], failures: [{ts_ms, name, node, error, root_task}]}.
  nlohmann::json detail(const std::string& job, std::int64_t after_ms, std::size_t limit) const;
  // Every job's summary (for /metrics).
  std::map<std::string, nlohmann::json> summaries() const;
  std::size_t spans() const { return total_spans_; }
  // {total (matching), offset, states: {state: count over the jobs asked}, actors: [{job, id, name, state, node,
  // restarts, error, since_ms}]}: one job's (or every job's when `job` is empty), live ones first then the latest
  // to change, filtered by `state` and a case-insensitive substring `q` of name, node or error.
  nlohmann::json actors(const std::string& job, const std::string& state, const std::string& q, std::size_t offset,
                        std::size_t limit) const;

 private:
  struct Job {
    std::map<std::uint64_t, nlohmann::json> owners;  // owner -> its latest counts and histogram
    std::deque<nlohmann::json> spans;                // [name, node, start_ms, end_ms, ok, kind]
    std::deque<nlohmann::json> failures;
    struct Actor {
      std::string name, state, node, error;
      std::int64_t restarts = 0, since_ms = 0;
    };
    std::map<std::pair<std::uint64_t, std::uint64_t>, Actor> actors;  // (owner, id)
    std::uint64_t order = 0;                         // first report's sequence (oldest first when trimming)
  };
  std::map<std::string, Job> jobs_;
  std::uint64_t next_order_ = 0;
  std::size_t total_spans_ = 0;
};

}  // namespace iogrid::runtime::head
