#include "runtime/head/history.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>

#include <spdlog/spdlog.h>

#include "iogrid/core/errors.hpp"
#include "runtime/head/sqlite.hpp"

namespace iogrid::runtime::head {

using sql::Stmt;

namespace {

constexpr std::int64_t kWidthMs[3] = {0, 60'000, 3'600'000};  // raw points keep their own time

std::chrono::milliseconds parse_duration(const std::string& text, const std::string& part) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double ms = 0;
  if (unit == "ms") ms = v;
  else if (unit == "s") ms = v * 1e3;
  else if (unit == "m") ms = v * 60e3;
  else if (unit == "h") ms = v * 3600e3;
  else if (unit == "d") ms = v * 86400e3;
  if (used == 0 || ms <= 0 || !std::isfinite(ms) || ms > 1e14 || (unit != "ms" && unit != "s" && unit != "m" && unit != "h" && unit != "d"))
    throw core::Error("iogrid: history option '" + part + "': expected a positive duration such as 500ms, 10s, 5m, 6h or 30d");
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

}  // namespace

HistoryOptions parse_history_options(const std::string& spec, HistoryOptions o) {
  std::stringstream in(spec);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    if (eq == std::string::npos)
      throw core::Error("iogrid: history option '" + part + "': expected NAME=DURATION (raw, minute, hour, events, interval)");
    const auto name = part.substr(0, eq);
    const auto d = parse_duration(part.substr(eq + 1), part);
    if (name == "raw") o.raw_keep = d;
    else if (name == "minute") o.minute_keep = d;
    else if (name == "hour") o.hour_keep = d;
    else if (name == "events") o.events_keep = d;
    else if (name == "interval") o.raw_interval = d;
    else throw core::Error("iogrid: history option '" + part + "': unknown name '" + name + "' (raw, minute, hour, events, interval)");
  }
  return o;
}

void History::Delta::add(double v) { merge(Delta{v, v, v, 1}); }

void History::Delta::merge(const Delta& o) {
  if (o.count == 0) return;
  if (count == 0) min = o.min, max = o.max;
  sum += o.sum;
  count += o.count;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
}

History::History(const std::string& path, HistoryOptions options) : path_(path), options_(options) {
  db_ = sql::open(path_, "history");
  try {
    if (path_ != ":memory:") exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)");
    exec("CREATE TABLE IF NOT EXISTS points(series INTEGER, res INTEGER, ts INTEGER, sum REAL, count INTEGER, min REAL,"
         " max REAL, PRIMARY KEY(series, res, ts)) WITHOUT ROWID");
    exec("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER, kind TEXT, subject TEXT,"
         " detail TEXT)");
    exec("CREATE INDEX IF NOT EXISTS events_ts ON events(ts)");
    Stmt latest(db_, "SELECT MAX(ts) FROM points WHERE res = 0");
    if (latest.step() && sqlite3_column_type(latest.s, 0) != SQLITE_NULL) latest_ms_ = latest.col_num(0);
    Stmt seq(db_, "SELECT MAX(id) FROM (SELECT MAX(id) AS id FROM events UNION ALL"
                  " SELECT seq AS id FROM sqlite_sequence WHERE name = 'events')");
    if (seq.step()) next_event_id_ = seq.col_num(0) + 1;
    // Every series known so far, so a new one gets a fresh id in memory without asking the database.
    Stmt all(db_, "SELECT id, name FROM series");
    while (all.step()) {
      const auto id = all.col_num(0);
      series_[all.col_text(1)].id = id;
      next_id_ = std::max(next_id_, id + 1);
    }
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
  writer_ = std::thread([this] { writer_loop(); });
}

History::~History() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  writer_.join();
  try {
    flush();
  } catch (...) {
  }
  sqlite3_close(db_);
}

void History::exec(const char* statement) { sql::exec(db_, statement, path_); }

History::SeriesState& History::state_of(const std::string& name) {
  auto it = series_.find(name);
  if (it != series_.end()) return it->second;
  auto& s = series_[name];
  s.id = next_id_++;
  queued_.series.emplace_back(s.id, name);
  return s;
}

void History::record(const std::string& series, std::int64_t ts_ms, double value) {
  if (!std::isfinite(value)) return;
  std::lock_guard<std::mutex> g(mu_);
  auto& s = state_of(series);
  latest_ms_ = std::max(latest_ms_, ts_ms);
  if (s.last_raw == INT64_MIN || ts_ms - s.last_raw >= options_.raw_interval.count() || ts_ms < s.last_raw) {
    s.last_raw = ts_ms;
    Row r{s.id, raw, ts_ms, {}};
    r.d.add(value);
    queued_.rows.push_back(r);
  }
  for (int r = minute; r <= hour; ++r) {
    const std::int64_t bucket = ts_ms - ((ts_ms % kWidthMs[r]) + kWidthMs[r]) % kWidthMs[r];
    auto& open = s.open[r - 1];
    if (open.ts != bucket) {
      // A value for another bucket (the next one, or a late one for an earlier): what the open one holds is
      // queued as it stands; the database adds it to what it has for that bucket.
      if (open.unwritten.count) queued_.rows.push_back(Row{s.id, r, open.ts, open.unwritten});
      open.ts = bucket;
      open.unwritten = {};
    }
    open.unwritten.add(value);
  }
}

void History::event(std::int64_t ts_ms, const std::string& kind, const std::string& subject, const std::string& detail) {
  HistoryEvent e{0, ts_ms, kind, subject, detail};
  {
    std::lock_guard<std::mutex> g(mu_);
    e.id = next_event_id_++;
    queued_.events.push_back(e);
  }
  std::lock_guard<std::mutex> g(listener_mu_);
  if (listener_) listener_(e);
}

void History::on_event(std::function<void(const HistoryEvent&)> listener) {
  std::lock_guard<std::mutex> g(listener_mu_);
  listener_ = std::move(listener);
}

bool History::events_pending() const {
  std::lock_guard<std::mutex> g(mu_);
  return !queued_.events.empty();
}

History::Batch History::take(Checkpoint checkpoint, std::size_t max_rows) {
  std::lock_guard<std::mutex> g(mu_);
  if (checkpoint != Checkpoint::none)
    for (auto& [name, s] : series_)
      for (int r = checkpoint == Checkpoint::all ? minute : hour; r <= hour; ++r)
        if (auto& open = s.open[r - 1]; open.unwritten.count) {
          queued_.rows.push_back(Row{s.id, r, open.ts, open.unwritten});
          open.unwritten = {};
        }
  Batch b;
  std::swap(b.series, queued_.series);
  std::swap(b.events, queued_.events);
  if (queued_.rows.size() <= max_rows) {
    std::swap(b.rows, queued_.rows);
  } else {  // the newest rows stay queued for the next transaction (order does not matter: upserts add up)
    b.rows.assign(queued_.rows.end() - static_cast<std::ptrdiff_t>(max_rows), queued_.rows.end());
    queued_.rows.resize(queued_.rows.size() - max_rows);
  }
  return b;
}

bool History::write_some(Checkpoint checkpoint) {
  std::lock_guard<std::mutex> g(db_mu_);
  auto b = take(checkpoint, kRowsPerTransaction);
  write(b);
  return !b.empty();
}

void History::write(const Batch& b) {
  if (b.empty()) return;
  exec("BEGIN");
  try {
    Stmt name(db_, "INSERT OR IGNORE INTO series(id, name) VALUES(?,?)");
    for (const auto& [id, n] : b.series) {
      name.num(1, id).text(2, n).step();
      name.reset();
    }
    // A bucket written by an earlier flush (or before a restart) is completed, not replaced.
    Stmt up(db_, "INSERT INTO points(series, res, ts, sum, count, min, max) VALUES(?,?,?,?,?,?,?)"
                 " ON CONFLICT(series, res, ts) DO UPDATE SET sum = sum + excluded.sum, count = count + excluded.count,"
                 " min = MIN(min, excluded.min), max = MAX(max, excluded.max)");
    for (const auto& r : b.rows) {
      up.num(1, r.series).num(2, r.res).num(3, r.ts).real(4, r.d.sum).num(5, r.d.count).real(6, r.d.min).real(7, r.d.max);
      up.step();
      up.reset();
    }
    Stmt ev(db_, "INSERT INTO events(id, ts, kind, subject, detail) VALUES(?,?,?,?,?)");
    for (const auto& e : b.events) {
      ev.num(1, e.id).num(2, e.ts_ms).text(3, e.kind).text(4, e.subject).text(5, e.detail).step();
      ev.reset();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::unique_lock<std::mutex> History::lock_for_query() {
  ++queries_waiting_;
  std::unique_lock<std::mutex> g(db_mu_);
  --queries_waiting_;
  return g;
}

void History::flush() {
  std::lock_guard<std::mutex> g(db_mu_);
  write(take(Checkpoint::all, SIZE_MAX));
}

void History::flush_in_background(bool checkpoint) {
  {
    std::lock_guard<std::mutex> g(mu_);
    want_flush_ = true;
    want_checkpoint_ = want_checkpoint_ || checkpoint;
  }
  wake_.notify_one();
}

void History::compact_in_background(std::int64_t now_ms) {
  {
    std::lock_guard<std::mutex> g(mu_);
    want_compact_ = now_ms;
  }
  wake_.notify_one();
}

void History::writer_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    wake_.wait(lk, [&] { return stopping_ || want_flush_ || want_compact_; });
    if (stopping_) return;
    const bool checkpoint = want_checkpoint_;
    const std::int64_t compact_at = want_compact_;
    want_flush_ = want_checkpoint_ = false;
    want_compact_ = 0;
    lk.unlock();
    try {
      // In transactions of a few thousand rows, letting a waiting query in between, so it waits for one of
      // them at most (a mutex is not fair: the writer would take it again at once).
      for (bool first = true; write_some(checkpoint && first ? Checkpoint::hours : Checkpoint::none); first = false)
        while (queries_waiting_.load() > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (compact_at) {
        std::lock_guard<std::mutex> g(db_mu_);
        compact_locked(compact_at);
      }
    } catch (const std::exception& e) {
      // The batch is lost, the history goes on: a full disk must not stop the head.
      spdlog::warn("history {}: {}", path_, e.what());
    }
    lk.lock();
  }
}

std::size_t History::compact(std::int64_t now_ms) {
  std::lock_guard<std::mutex> g(db_mu_);
  write(take(Checkpoint::none, SIZE_MAX));
  return compact_locked(now_ms);
}

std::size_t History::compact_locked(std::int64_t now_ms) {
  const std::int64_t keep[3] = {options_.raw_keep.count(), options_.minute_keep.count(), options_.hour_keep.count()};
  std::size_t deleted = 0;
  for (int r = raw; r <= hour; ++r) {
    Stmt(db_, "DELETE FROM points WHERE res = ? AND ts < ?").num(1, r).num(2, now_ms - keep[r]).step();
    deleted += static_cast<std::size_t>(sqlite3_changes(db_));
  }
  Stmt(db_, "DELETE FROM events WHERE ts < ?").num(1, now_ms - options_.events_keep.count()).step();
  deleted += static_cast<std::size_t>(sqlite3_changes(db_));
  return deleted;
}

std::vector<HistoryPoint> History::points(const std::string& name, std::int64_t from_ms, std::int64_t to_ms,
                                          std::size_t max_points, Resolution* used) {
  // Holding db_mu_, every row the writer took is committed; what it has not taken yet is in memory (queued
  // rows and the open buckets) and read here at one moment, so each value counts once.
  auto dbg = lock_for_query();
  std::map<std::pair<int, std::int64_t>, Delta> mem;  // (resolution, time) -> what memory holds of it
  std::int64_t sid = 0, latest = INT64_MIN;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = series_.find(name);
    if (it == series_.end()) return {};
    sid = it->second.id;
    auto add = [&](int r, std::int64_t ts, const Delta& d) {
      if (ts >= from_ms && ts <= to_ms) mem[{r, ts}].merge(d);
    };
    for (const auto& row : queued_.rows)
      if (row.series == sid) add(row.res, row.ts, row.d);
    for (int r = minute; r <= hour; ++r) add(r, it->second.open[r - 1].ts, it->second.open[r - 1].unwritten);
    latest = latest_ms_;
  }
  max_points = std::max<std::size_t>(max_points, 1);
  // The finest resolution that still holds the start of the range (its retention reaches back that far) and
  // answers within max_points; else the coarsest that holds it, merged down to max_points.
  const std::int64_t keep[3] = {options_.raw_keep.count(), options_.minute_keep.count(), options_.hour_keep.count()};
  int chosen = hour;
  for (int r = raw; r <= hour; ++r) {
    const bool holds_start = latest == INT64_MIN || from_ms >= latest - keep[r];
    if (!holds_start && r < hour) continue;
    Stmt n(db_, "SELECT COUNT(*) FROM points WHERE series = ? AND res = ? AND ts BETWEEN ? AND ?");
    n.num(1, sid).num(2, r).num(3, from_ms).num(4, to_ms).step();
    auto count = static_cast<std::size_t>(n.col_num(0));
    for (auto m = mem.lower_bound({r, INT64_MIN}); m != mem.end() && m->first.first == r; ++m) {
      Stmt there(db_, "SELECT 1 FROM points WHERE series = ? AND res = ? AND ts = ?");
      if (!there.num(1, sid).num(2, r).num(3, m->first.second).step()) ++count;  // a point the database lacks
    }
    if (count <= max_points) {
      chosen = r;
      break;
    }
  }
  if (used) *used = static_cast<Resolution>(chosen);
  std::map<std::int64_t, Delta> by_ts;  // what the database holds, then what memory adds
  Stmt st(db_, "SELECT ts, sum, count, min, max FROM points WHERE series = ? AND res = ? AND ts BETWEEN ? AND ?");
  st.num(1, sid).num(2, chosen).num(3, from_ms).num(4, to_ms);
  while (st.step()) by_ts[st.col_num(0)].merge(Delta{st.col_real(1), st.col_real(3), st.col_real(4), st.col_num(2)});
  for (auto m = mem.lower_bound({chosen, INT64_MIN}); m != mem.end() && m->first.first == chosen; ++m)
    by_ts[m->first.second].merge(m->second);
  std::vector<HistoryPoint> rows;
  rows.reserve(by_ts.size());
  for (const auto& [ts, d] : by_ts)
    rows.push_back(HistoryPoint{ts, d.count ? d.sum / double(d.count) : 0, d.min, d.max, d.count});
  if (rows.size() <= max_points) return rows;
  // Too many even at the coarsest: merge runs of consecutive points (weighted by their counts).
  const std::size_t per = (rows.size() + max_points - 1) / max_points;
  std::vector<HistoryPoint> out;
  for (std::size_t i = 0; i < rows.size(); i += per) {
    HistoryPoint m = rows[i];
    double sum = m.mean * double(m.count);
    for (std::size_t j = i + 1; j < std::min(rows.size(), i + per); ++j) {
      sum += rows[j].mean * double(rows[j].count);
      m.count += rows[j].count;
      m.min = std::min(m.min, rows[j].min);
      m.max = std::max(m.max, rows[j].max);
    }
    m.mean = m.count ? sum / double(m.count) : 0;
    out.push_back(m);
  }
  return out;
}

std::vector<std::string> History::series(const std::string& prefix) {
  std::vector<std::string> out;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& [name, s] : series_)
      if (name.compare(0, prefix.size(), prefix) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<HistoryEvent> History::events(const EventQuery& q) {
  const auto limit = std::min<std::size_t>(q.limit, 10'000);
  auto matches = [&](const HistoryEvent& e) {
    return (q.kind.empty() || e.kind == q.kind) && e.subject.compare(0, q.subject_prefix.size(), q.subject_prefix) == 0 &&
           (q.text.empty() || e.detail.find(q.text) != std::string::npos || e.subject.find(q.text) != std::string::npos) &&
           e.ts_ms >= q.from_ms && e.ts_ms <= q.to_ms && (q.before_id == 0 || e.id < q.before_id);
  };
  auto dbg = lock_for_query();
  std::vector<HistoryEvent> out;
  {
    std::lock_guard<std::mutex> g(mu_);  // the newest ones, not written yet
    for (auto e = queued_.events.rbegin(); e != queued_.events.rend() && out.size() < limit; ++e)
      if (matches(*e)) out.push_back(*e);
  }
  if (out.size() >= limit) return out;
  // Newest first is a walk down the ids; the time index only helps a window that starts somewhere (else
  // SQLite would walk all of it and sort).
  const bool window = q.from_ms > 0;
  Stmt st(db_, window ? "SELECT id, ts, kind, subject, detail FROM events"
                        " WHERE (?1 = '' OR kind = ?1) AND substr(subject, 1, length(?2)) = ?2"
                        " AND (?3 = '' OR instr(detail, ?3) > 0 OR instr(subject, ?3) > 0)"
                        " AND ts BETWEEN ?4 AND ?5 AND (?6 = 0 OR id < ?6) ORDER BY id DESC LIMIT ?7"
                      : "SELECT id, ts, kind, subject, detail FROM events"
                        " WHERE (?1 = '' OR kind = ?1) AND substr(subject, 1, length(?2)) = ?2"
                        " AND (?3 = '' OR instr(detail, ?3) > 0 OR instr(subject, ?3) > 0)"
                        " AND +ts BETWEEN ?4 AND ?5 AND (?6 = 0 OR id < ?6) ORDER BY id DESC LIMIT ?7");
  st.text(1, q.kind).text(2, q.subject_prefix).text(3, q.text).num(4, q.from_ms).num(5, q.to_ms).num(6, q.before_id);
  st.num(7, static_cast<std::int64_t>(limit - out.size()));
  while (st.step()) out.push_back(HistoryEvent{st.col_num(0), st.col_num(1), st.col_text(2), st.col_text(3), st.col_text(4)});
  return out;
}

}  // namespace iogrid::runtime::head
