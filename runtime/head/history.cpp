#include "runtime/head/history.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>
#include <tuple>

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

History::History(const std::string& path, HistoryOptions options) : path_(path), options_(options) {
  db_ = sql::open(path_, "history");
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
}

History::~History() {
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
  Stmt(db_, "INSERT OR IGNORE INTO series(name) VALUES(?)").text(1, name).step();
  Stmt st(db_, "SELECT id FROM series WHERE name = ?");
  st.text(1, name);
  if (!st.step()) throw core::Error("iogrid: history: series '" + name + "' could not be stored");
  auto& s = series_[name];
  s.id = st.col_num(0);
  return s;
}

void History::record(const std::string& series, std::int64_t ts_ms, double value) {
  if (!std::isfinite(value)) return;
  std::lock_guard<std::mutex> g(mu_);
  auto& s = state_of(series);
  latest_ms_ = std::max(latest_ms_, ts_ms);
  for (int r = raw; r <= hour; ++r) {
    if (r == raw) {
      if (s.last_raw != INT64_MIN && ts_ms - s.last_raw < options_.raw_interval.count() && ts_ms >= s.last_raw) continue;
      s.last_raw = ts_ms;
    }
    const std::int64_t bucket = r == raw ? ts_ms : ts_ms - ((ts_ms % kWidthMs[r]) + kWidthMs[r]) % kWidthMs[r];
    auto& d = pending_[{s.id, r, bucket}];
    if (d.count == 0) d.min = d.max = value;
    d.sum += value;
    d.min = std::min(d.min, value);
    d.max = std::max(d.max, value);
    ++d.count;
  }
}

void History::event(std::int64_t ts_ms, const std::string& kind, const std::string& subject, const std::string& detail) {
  HistoryEvent e{0, ts_ms, kind, subject, detail};
  {
    std::lock_guard<std::mutex> g(mu_);
    pending_events_.push_back(e);
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
  return !pending_events_.empty();
}

void History::flush() {
  std::lock_guard<std::mutex> g(mu_);
  flush_locked();
}

void History::flush_locked() {
  if (pending_.empty() && pending_events_.empty()) return;
  exec("BEGIN");
  try {
    // A bucket written by an earlier flush (or before a restart) is completed, not replaced.
    Stmt up(db_, "INSERT INTO points(series, res, ts, sum, count, min, max) VALUES(?,?,?,?,?,?,?)"
                 " ON CONFLICT(series, res, ts) DO UPDATE SET sum = sum + excluded.sum, count = count + excluded.count,"
                 " min = MIN(min, excluded.min), max = MAX(max, excluded.max)");
    for (const auto& [key, d] : pending_) {
      up.num(1, std::get<0>(key)).num(2, std::get<1>(key)).num(3, std::get<2>(key)).real(4, d.sum).num(5, d.count);
      up.real(6, d.min).real(7, d.max).step();
      up.reset();
    }
    Stmt ev(db_, "INSERT INTO events(ts, kind, subject, detail) VALUES(?,?,?,?)");
    for (const auto& e : pending_events_) {
      ev.num(1, e.ts_ms).text(2, e.kind).text(3, e.subject).text(4, e.detail).step();
      ev.reset();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  pending_.clear();
  pending_events_.clear();
}

std::size_t History::compact(std::int64_t now_ms) {
  std::lock_guard<std::mutex> g(mu_);
  flush_locked();
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
  std::lock_guard<std::mutex> g(mu_);
  flush_locked();
  max_points = std::max<std::size_t>(max_points, 1);
  Stmt id(db_, "SELECT id FROM series WHERE name = ?");
  id.text(1, name);
  if (!id.step()) return {};
  const std::int64_t sid = id.col_num(0);
  // The finest resolution that still holds the start of the range (its retention reaches back that far) and
  // answers within max_points; else the coarsest that holds it, merged down to max_points.
  const std::int64_t keep[3] = {options_.raw_keep.count(), options_.minute_keep.count(), options_.hour_keep.count()};
  int chosen = hour;
  for (int r = raw; r <= hour; ++r) {
    const bool holds_start = latest_ms_ == INT64_MIN || from_ms >= latest_ms_ - keep[r];
    if (!holds_start && r < hour) continue;
    Stmt n(db_, "SELECT COUNT(*) FROM points WHERE series = ? AND res = ? AND ts BETWEEN ? AND ?");
    n.num(1, sid).num(2, r).num(3, from_ms).num(4, to_ms).step();
    if (static_cast<std::size_t>(n.col_num(0)) <= max_points) {
      chosen = r;
      break;
    }
  }
  if (used) *used = static_cast<Resolution>(chosen);
  std::vector<HistoryPoint> rows;
  Stmt st(db_, "SELECT ts, sum, count, min, max FROM points WHERE series = ? AND res = ? AND ts BETWEEN ? AND ? ORDER BY ts");
  st.num(1, sid).num(2, chosen).num(3, from_ms).num(4, to_ms);
  while (st.step()) {
    HistoryPoint p;
    p.ts_ms = st.col_num(0);
    p.count = st.col_num(2);
    p.mean = p.count ? st.col_real(1) / double(p.count) : 0;
    p.min = st.col_real(3);
    p.max = st.col_real(4);
    rows.push_back(p);
  }
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
  std::lock_guard<std::mutex> g(mu_);
  flush_locked();
  std::vector<std::string> out;
  Stmt st(db_, "SELECT name FROM series WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name");
  st.text(1, prefix);
  while (st.step()) out.push_back(st.col_text(0));
  return out;
}

std::vector<HistoryEvent> History::events(const EventQuery& q) {
  std::lock_guard<std::mutex> g(mu_);
  flush_locked();
  std::vector<HistoryEvent> out;
  Stmt st(db_, "SELECT id, ts, kind, subject, detail FROM events"
               " WHERE (?1 = '' OR kind = ?1) AND substr(subject, 1, length(?2)) = ?2"
               " AND (?3 = '' OR instr(detail, ?3) > 0 OR instr(subject, ?3) > 0)"
               " AND ts BETWEEN ?4 AND ?5 AND (?6 = 0 OR id < ?6) ORDER BY id DESC LIMIT ?7");
  st.text(1, q.kind).text(2, q.subject_prefix).text(3, q.text).num(4, q.from_ms).num(5, q.to_ms).num(6, q.before_id);
  st.num(7, static_cast<std::int64_t>(std::min<std::size_t>(q.limit, 10'000)));
  while (st.step()) out.push_back(HistoryEvent{st.col_num(0), st.col_num(1), st.col_text(2), st.col_text(3), st.col_text(4)});
  return out;
}

}  // namespace iogrid::runtime::head
