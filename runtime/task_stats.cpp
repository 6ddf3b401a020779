#include "runtime/task_stats.hpp"

#include <chrono>

namespace iogrid::runtime {

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::size_t kind_index(core::TaskKind k) { return static_cast<std::size_t>(k) % 3; }

std::size_t actor_state_index(const std::string& s) {
  for (std::size_t i = 0; i < 4; ++i)
    if (s == TaskStats::kActorStates[i]) return i;
  return 0;
}

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
  out["spot_checks"] = check_counts();
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

nlohmann::json TaskStats::report(Cursor& c, std::size_t max_spans) const {
  auto out = snapshot(c.spans_after_ms, max_spans);
  if (!out["spans"].empty()) c.spans_after_ms = out["spans"].back()[3].get<std::int64_t>();
  std::lock_guard<std::mutex> g(m_);
  auto& rows = out["actors"] = nlohmann::json::array();
  for (const auto& [id, a] : actors_)
    if (a.version > c.actors_after) rows.push_back({id, a.name, a.state, a.node, a.restarts, a.error, a.since_ms});
  c.actors_after = actor_version_;
  reported_ = actor_version_;
  prune_locked();
  auto& counts = out["actor_states"] = nlohmann::json::object();
  for (std::size_t i = 0; i < 4; ++i) counts[kActorStates[i]] = actor_counts_[i];
  if (!pending_checks_.empty()) {
    auto& checks = out["checks"] = nlohmann::json::array();
    for (const auto& r : pending_checks_) checks.push_back(r.to_json());
    pending_checks_.clear();
  }
  return out;
}

void TaskStats::check_done(const CheckRecord& r, bool keep) {
  switch (r.verdict) {
    case sched::CheckVerdict::agreed: checks_.agreed.fetch_add(1, std::memory_order_relaxed); break;
    case sched::CheckVerdict::settled: checks_.settled.fetch_add(1, std::memory_order_relaxed); break;
    case sched::CheckVerdict::unsettled: checks_.unsettled.fetch_add(1, std::memory_order_relaxed); break;
    case sched::CheckVerdict::unchecked: checks_.unchecked.fetch_add(1, std::memory_order_relaxed); break;
  }
  checks_.extra_runs.fetch_add(r.extra_runs, std::memory_order_relaxed);
  changes_.fetch_add(1, std::memory_order_relaxed);
  if (!keep) return;
  std::lock_guard<std::mutex> g(m_);
  if (pending_checks_.size() >= kMaxPendingChecks) {
    checks_.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_checks_.push_back(r);
  if (pending_checks_.back().ts_ms == 0) pending_checks_.back().ts_ms = now_us() / 1000;
}

nlohmann::json TaskStats::check_counts() const {
  auto n = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {{"agreed", n(checks_.agreed)},     {"settled", n(checks_.settled)},     {"unsettled", n(checks_.unsettled)},
          {"unchecked", n(checks_.unchecked)}, {"extra_runs", n(checks_.extra_runs)}, {"dropped", n(checks_.dropped)}};
}

nlohmann::json CheckRecord::to_json() const {
  return {{"ts_ms", ts_ms},         {"task", task}, {"verdict", sched::to_string(verdict)}, {"agreed", agreed},
          {"disagreed", disagreed}, {"providers", providers}, {"why", why}, {"extra_runs", extra_runs}};
}

CheckRecord CheckRecord::from_json(const nlohmann::json& j) {
  CheckRecord r;
  r.ts_ms = j.at("ts_ms").get<std::int64_t>();
  r.task = j.at("task").get<std::string>();
  const auto v = j.at("verdict").get<std::string>();
  bool known = false;
  for (auto c : {sched::CheckVerdict::agreed, sched::CheckVerdict::settled, sched::CheckVerdict::unsettled,
                 sched::CheckVerdict::unchecked})
    if (v == sched::to_string(c)) {
      r.verdict = c;
      known = true;
    }
  if (!known) throw std::runtime_error("unknown check verdict '" + v + "'");
  r.agreed = j.at("agreed").get<std::vector<std::string>>();
  r.disagreed = j.at("disagreed").get<std::string>();
  r.providers = j.at("providers").get<std::vector<std::string>>();
  r.why = j.at("why").get<std::string>();
  r.extra_runs = j.at("extra_runs").get<std::size_t>();
  return r;
}

std::uint64_t TaskStats::actor_created(const std::string& name) {
  std::lock_guard<std::mutex> g(m_);
  const auto id = next_actor_++;
  auto& a = actors_[id];
  a.name = name;
  a.state = kActorStates[0];
  a.since_ms = now_us() / 1000;
  a.version = ++actor_version_;
  ++actor_counts_[0];
  changes_.fetch_add(1, std::memory_order_relaxed);
  return id;
}

void TaskStats::actor_changed(std::uint64_t id, const char* state, const std::string& node, int restarts,
                              const std::string& error) {
  std::lock_guard<std::mutex> g(m_);
  auto it = actors_.find(id);
  if (it == actors_.end()) return;
  auto& a = it->second;
  if (a.state == "dead") return;  // dead is for good
  --actor_counts_[actor_state_index(a.state)];
  a.state = state;
  ++actor_counts_[actor_state_index(a.state)];
  a.node = node;
  a.restarts = restarts;
  a.error = error;
  a.since_ms = now_us() / 1000;
  a.version = ++actor_version_;
  changes_.fetch_add(1, std::memory_order_relaxed);
  if (a.state == "dead") {
    dead_actors_.push_back(id);
    prune_locked();
  }
}

void TaskStats::prune_locked() const {
  // A dead actor is forgotten once a report carried its death (the head keeps it), or when twice the limit
  // died with nobody reporting (a program without a head to report to).
  while (dead_actors_.size() > kMaxDeadActors) {
    auto it = actors_.find(dead_actors_.front());
    if (it != actors_.end() && it->second.version > reported_ && dead_actors_.size() <= 2 * kMaxDeadActors) break;
    if (it != actors_.end()) actors_.erase(it);
    dead_actors_.pop_front();
  }
}

std::vector<std::pair<std::uint64_t, ActorRow>> TaskStats::actors() const {
  std::lock_guard<std::mutex> g(m_);
  return {actors_.begin(), actors_.end()};
}

}  // namespace iogrid::runtime
