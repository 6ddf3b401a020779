#include "runtime/head/task_book.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace iogrid::runtime::head {

namespace {

const char* kKinds[] = {"task", "actor_create", "actor_call"};
const char* kStates[] = {"submitted", "waiting", "running", "finished", "failed"};
const char* kActorStates[] = {"pending", "alive", "restarting", "dead"};

bool known_actor_state(const std::string& s) {
  return std::find_if(std::begin(kActorStates), std::end(kActorStates), [&](const char* k) { return s == k; }) !=
         std::end(kActorStates);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

void TaskBook::report(const std::string& job, std::uint64_t owner, const std::string& json) {
  auto r = nlohmann::json::parse(json);
  if (!r.is_object() || !r.contains("tasks") || !r["tasks"].is_object()) throw std::invalid_argument("no 'tasks' object");
  // Keep only what we know, as numbers: a hostile owner cannot grow the head's memory through odd fields.
  nlohmann::json counts;
  for (const char* k : kKinds)
    for (const char* s : kStates) {
      const auto& v = r["tasks"].value(k, nlohmann::json::object());
      counts["tasks"][k][s] = v.is_object() && v.value(s, nlohmann::json(0)).is_number_unsigned() ? v.value(s, std::uint64_t(0)) : 0;
    }
  const auto& dc = r.value("duration_counts", nlohmann::json::array());
  counts["duration_counts"] = nlohmann::json::array();
  for (std::size_t i = 0; i < dc.size() && i < 32; ++i) counts["duration_counts"].push_back(dc[i].is_number_unsigned() ? dc[i].get<std::uint64_t>() : 0);
  counts["duration_buckets"] = r.value("duration_buckets", nlohmann::json::array());
  bool numbers = counts["duration_buckets"].is_array() && counts["duration_buckets"].size() <= 32;
  for (const auto& b : counts["duration_buckets"]) numbers = numbers && b.is_number();
  if (!numbers) counts["duration_buckets"] = nlohmann::json::array();
  const auto sum = r.value("duration_sum_s", nlohmann::json(0.0));
  counts["duration_sum_s"] = sum.is_number() ? sum.get<double>() : 0.0;
  const auto& as = r.value("actor_states", nlohmann::json::object());
  for (const char* st : kActorStates) {
    const auto v = as.is_object() ? as.value(st, nlohmann::json(0)) : nlohmann::json(0);
    counts["actor_states"][st] = v.is_number_unsigned() ? v.get<std::uint64_t>() : 0;
  }
  auto [it, fresh] = jobs_.try_emplace(job);
  auto& j = it->second;
  if (fresh) j.order = next_order_++;
  j.owners[owner] = std::move(counts);
  for (const auto& a : r.value("actors", nlohmann::json::array())) {
    // [id, name, state, node, restarts, error, since_ms]
    if (!a.is_array() || a.size() != 7 || !a[0].is_number_unsigned() || !a[1].is_string() || !a[2].is_string() ||
        !known_actor_state(a[2].get<std::string>()) || !a[3].is_string() || !a[4].is_number_integer() ||
        !a[5].is_string() || !a[6].is_number_integer())
      continue;
    auto& row = j.actors[{owner, a[0].get<std::uint64_t>()}];
    row.name = a[1].get<std::string>().substr(0, 200);
    row.state = a[2].get<std::string>();
    row.node = a[3].get<std::string>().substr(0, 100);
    row.restarts = a[4].get<std::int64_t>();
    row.error = a[5].get<std::string>().substr(0, 2000);
    row.since_ms = a[6].get<std::int64_t>();
  }
  if (j.actors.size() > kActorsPerJob) {
    // The dead that died first go.
    std::vector<std::pair<std::int64_t, std::pair<std::uint64_t, std::uint64_t>>> dead;
    for (const auto& [k, a] : j.actors)
      if (a.state == "dead") dead.push_back({a.since_ms, k});
    const auto over = std::min(dead.size(), j.actors.size() - kActorsPerJob);
    std::nth_element(dead.begin(), dead.begin() + static_cast<std::ptrdiff_t>(over), dead.end());
    for (std::size_t i = 0; i < over; ++i) j.actors.erase(dead[i].second);
  }
  for (const auto& s : r.value("spans", nlohmann::json::array())) {
    if (!s.is_array() || s.size() != 6 || !s[0].is_string() || !s[1].is_string() || !s[2].is_number() || !s[3].is_number()) continue;
    j.spans.push_back({s[0].get<std::string>().substr(0, 200), s[1].get<std::string>().substr(0, 100), s[2], s[3],
                       s[4].is_boolean() && s[4].get<bool>(), s[5].is_number() ? s[5] : nlohmann::json(0)});
    ++total_spans_;
    if (j.spans.size() > kSpansPerJob) {
      j.spans.pop_front();
      --total_spans_;
    }
  }
  for (const auto& f : r.value("failures", nlohmann::json::array())) {
    if (!f.is_object()) continue;
    nlohmann::json kept;
    for (const char* k : {"name", "node", "error", "root_task"}) {
      const auto v = f.value(k, nlohmann::json(""));
      kept[k] = v.is_string() ? v.get<std::string>().substr(0, 2000) : "";
    }
    const auto ts = f.value("ts_ms", nlohmann::json(0));
    kept["ts_ms"] = ts.is_number() ? ts : nlohmann::json(0);
    // Owners send their whole recent list; keep each failure once.
    bool seen = false;
    for (auto r2 = j.failures.rbegin(); r2 != j.failures.rend() && !seen; ++r2) seen = *r2 == kept;
    if (seen) continue;
    j.failures.push_back(std::move(kept));
    if (j.failures.size() > kFailuresPerJob) j.failures.pop_front();
  }
  // Over the head's total: the oldest job's spans go first.
  while (total_spans_ > kSpansTotal) {
    Job* oldest = nullptr;
    for (auto& [id, x] : jobs_)
      if (!x.spans.empty() && (!oldest || x.order < oldest->order)) oldest = &x;
    if (!oldest) break;
    oldest->spans.pop_front();
    --total_spans_;
  }
}

nlohmann::json TaskBook::summary(const std::string& job) const {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return nullptr;
  nlohmann::json out;
  for (const char* k : kKinds)
    for (const char* s : kStates) {
      std::uint64_t sum = 0;
      for (const auto& [o, c] : it->second.owners) sum += c["tasks"][k][s].get<std::uint64_t>();
      out[k][s] = sum;
    }
  // The duration histogram, summed over owners that report the same buckets.
  nlohmann::json buckets = nlohmann::json::array(), counts = nlohmann::json::array();
  double sum = 0;
  for (const auto& [o, c] : it->second.owners) {
    if (buckets.empty()) {
      buckets = c["duration_buckets"];
      counts = nlohmann::json(std::vector<std::uint64_t>(c["duration_counts"].size(), 0));
    }
    if (c["duration_buckets"] != buckets || c["duration_counts"].size() != counts.size()) continue;
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = counts[i].get<std::uint64_t>() + c["duration_counts"][i].get<std::uint64_t>();
    sum += c["duration_sum_s"].get<double>();
  }
  out["duration"] = {{"buckets", buckets}, {"counts", counts}, {"sum_s", sum}};
  for (const char* st : kActorStates) {
    std::uint64_t n = 0;
    for (const auto& [o, c] : it->second.owners)
      if (c.contains("actor_states")) n += c["actor_states"][st].get<std::uint64_t>();
    out["actors"][st] = n;
  }
  return out;
}

std::map<std::string, nlohmann::json> TaskBook::summaries() const {
  std::map<std::string, nlohmann::json> out;
  for (const auto& [id, j] : jobs_) out[id] = summary(id);
  return out;
}

nlohmann::json TaskBook::detail(const std::string& job, std::int64_t after_ms, std::size_t limit) const {
  nlohmann::json out;
  out["job"] = job;
  out["tasks"] = summary(job);
  auto it = jobs_.find(job);
  out["spans"] = nlohmann::json::array();
  out["failures"] = nlohmann::json::array();
  if (it == jobs_.end()) return out;
  const auto& j = it->second;
  std::size_t first = j.spans.size();
  while (first > 0 && j.spans[first - 1][3].get<std::int64_t>() > after_ms && j.spans.size() - first < limit) --first;
  for (std::size_t i = first; i < j.spans.size(); ++i) out["spans"].push_back(j.spans[i]);
  for (const auto& f : j.failures) out["failures"].push_back(f);
  return out;
}

nlohmann::json TaskBook::actors(const std::string& job, const std::string& state, const std::string& q,
                                std::size_t offset, std::size_t limit) const {
  struct Hit {
    const std::string* job;
    std::pair<std::uint64_t, std::uint64_t> key;  // (owner, id)
    const Job::Actor* a;
  };
  std::vector<Hit> hits;
  nlohmann::json states = nlohmann::json::object();
  for (const char* st : kActorStates) states[st] = 0;
  const auto ql = lower(q);
  for (const auto& [id, j] : jobs_) {
    if (!job.empty() && id != job) continue;
    for (const auto& [o, c] : j.owners)
      if (c.contains("actor_states"))
        for (const char* st : kActorStates) states[st] = states[st].get<std::uint64_t>() + c["actor_states"][st].get<std::uint64_t>();
    for (const auto& [k, a] : j.actors) {
      if (!state.empty() && a.state != state) continue;
      if (!ql.empty() && lower(a.name).find(ql) == std::string::npos && lower(a.node).find(ql) == std::string::npos &&
          lower(a.error).find(ql) == std::string::npos)
        continue;
      hits.push_back({&id, k, &a});
    }
  }
  // Live ones first, then the latest to change.
  std::sort(hits.begin(), hits.end(), [](const Hit& x, const Hit& y) {
    const bool dx = x.a->state == "dead", dy = y.a->state == "dead";
    if (dx != dy) return dy;
    if (x.a->since_ms != y.a->since_ms) return x.a->since_ms > y.a->since_ms;
    return std::tie(*x.job, x.key) < std::tie(*y.job, y.key);
  });
  nlohmann::json out{{"total", hits.size()}, {"offset", offset}, {"states", states}, {"actors", nlohmann::json::array()}};
  for (std::size_t i = offset; i < hits.size() && i < offset + limit; ++i) {
    const auto& x = hits[i];
    out["actors"].push_back({{"job", *x.job}, {"id", std::to_string(x.key.first) + "." + std::to_string(x.key.second)}, {"name", x.a->name}, {"state", x.a->state},
                             {"node", x.a->node}, {"restarts", x.a->restarts}, {"error", x.a->error},
                             {"since_ms", x.a->since_ms}});
  }
  return out;
}

}  // namespace iogrid::runtime::head
