#include "runtime/task_stats.hpp"

#include <chrono>

namespace iogrid::runtime {

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::size_t kind_index(core::TaskKind k) { return static_cast<std::size_t>(k) % 3; }

}  // namespace

void TaskStats::submitted(const core::TaskSpec& spec) {
  kinds_[kind_index(spec.kind)].submitted.fetch_add(1, std::memory_order_relaxed);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

void TaskStats::started(core::TaskSpec& spec) {
  if (spec.started_us != 0) return;  // a call handed on again (a restarted actor's queue)
  spec.started_us = now_us();
  kinds_[kind_index(spec.kind)].started.fetch_add(1, std::memory_order_relaxed);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

void TaskStats::retried(core::TaskSpec& spec) {
  if (spec.started_us == 0) return;
  spec.started_us = 0;
  kinds_[kind_index(spec.kind)].started.fetch_sub(1, std::memory_order_relaxed);
  changes_.fetch_add(1, std::memory_order_relaxed);
}

void TaskStats::ended(const core::TaskSpec& spec, const std::string& node, bool ok, const std::string& error,
                      const std::string& root_task) {
  auto& c = kinds_[kind_index(spec.kind)];
  const auto end = now_us();
  if (spec.started_us == 0) {
    // It never ran (a failed argument, no lease, the runtime stopping): failed while waiting.
    c.failed_waiting.fetch_add(1, std::memory_order_relaxed);
  } else {
    (ok ? c.finished : c.failed).fetch_add(1, std::memory_order_relaxed);
    const double s = double(end - spec.started_us) / 1e6;
    std::size_t b = 0;
    while (b < kBuckets.size() && s > kBuckets[b]) ++b;
    buckets_[b].fetch_add(1, std::memory_order_relaxed);
    duration_sum_us_.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, end - spec.started_us)), std::memory_order_relaxed);
  }
  changes_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> g(m_);
  if (spec.started_us != 0) {
    spans_.push_back({spec.name, node, spec.started_us / 1000, end / 1000, ok, static_cast<std::uint8_t>(spec.kind)});
    if (spans_.size() > kMaxSpans) spans_.pop_front();
  }
  if (!ok) {
    failures_.push_back({end / 1000, spec.name, node, error, root_task});
    if (failures_.size() > kMaxFailures) failures_.pop_front();
  }
}

nlohmann::json TaskStats::snapshot(std::int64_t spans_after_ms, std::size_t max_spans) const {
  nlohmann::json out;
  static const char* names[] = {"task", "actor_create", "actor_call"};
  for (std::size_t k = 0; k < 3; ++k) {
    const auto& c = kinds_[k];
    const auto sub = c.submitted.load(std::memory_order_relaxed), st = c.started.load(std::memory_order_relaxed);
    const auto fin = c.finished.load(std::memory_order_relaxed), fail = c.failed.load(std::memory_order_relaxed);
    const auto fw = c.failed_waiting.load(std::memory_order_relaxed);
    const auto ended = fin + fail;
    out["tasks"][names[k]] = {{"submitted", sub},
                              {"waiting", sub > st + fw ? sub - st - fw : 0},
                              {"running", st > ended ? st - ended : 0},
                              {"finished", fin},
                              {"failed", fail + fw}};
  }
  out["duration_buckets"] = kBuckets;
  auto& counts = out["duration_counts"] = nlohmann::json::array();
  for (const auto& b : buckets_) counts.push_back(b.load(std::memory_order_relaxed));
  out["duration_sum_s"] = double(duration_sum_us_.load(std::memory_order_relaxed)) / 1e6;
  std::lock_guard<std::mutex> g(m_);
  auto& spans = out["spans"] = nlohmann::json::array();
  std::size_t first = spans_.size();
  while (first > 0 && spans_[first - 1].end_ms > spans_after_ms && spans_.size() - first < max_spans) --first;
  for (std::size_t i = first; i < spans_.size(); ++i) {
    const auto& s = spans_[i];
    spans.push_back({s.name, s.node, s.start_ms, s.end_ms, s.ok, s.kind});
  }
  auto& failures = out["failures"] = nlohmann::json::array();
  for (const auto& f : failures_)
    failures.push_back({{"ts_ms", f.ts_ms}, {"name", f.name}, {"node", f.node}, {"error", f.error}, {"root_task", f.root_task}});
  return out;
}

}  // namespace iogrid::runtime
