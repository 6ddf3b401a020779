// History: what the head remembers over time, in SQLite beside head.db (DIR/history.db), so it survives a head
// restart: numeric series (GPU telemetry per node and device, cluster totals) and events (nodes joining, dying,
// rejoining; jobs starting and ending; verification verdicts).
//
// Rules:
// - A series is a name ("gpu/NODE/0/temperature_c") and points (time in Unix ms, value). Each series is kept at
//   three resolutions: raw (at most one point per `raw_interval`; later ones in the same interval are dropped),
//   minute and hour buckets (mean, min and max of every recorded value in the bucket). Each resolution has its
//   own retention; `compact` deletes what is older. So history thins with age instead of growing without end.
// - A query picks the finest resolution that still covers its start and gives at most `max_points` points.
// - Events are rows (id, time, kind, subject, detail); they are searched by kind, subject prefix and text, newest
//   first, and paged by id (`before_id`), so a page stays cheap at any size.
// - Writes are buffered and go to the database in one transaction per `flush` (the head flushes once a second);
//   a bucket still open at a flush is written as it stands and completed by later flushes, also after a restart.
// - Thread-safe: the head's thread records, the dashboard's thread queries.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

struct sqlite3;

namespace iogrid::runtime::head {

struct HistoryOptions {
  std::chrono::milliseconds raw_interval{10'000};
  std::chrono::milliseconds raw_keep{std::chrono::hours(6)};
  std::chrono::milliseconds minute_keep{std::chrono::hours(24 * 7)};
  std::chrono::milliseconds hour_keep{std::chrono::hours(24 * 365)};
  std::chrono::milliseconds events_keep{std::chrono::hours(24 * 90)};
};

// Parses "raw=6h,minute=7d,hour=365d,events=90d,interval=10s" (any subset; units ms, s, m, h, d). Throws
// iogrid::Error naming the bad part.
HistoryOptions parse_history_options(const std::string& spec, HistoryOptions base = {});

struct HistoryPoint {
  std::int64_t ts_ms = 0;  // start of the raw interval or bucket
  double mean = 0, min = 0, max = 0;
  std::int64_t count = 0;  // values recorded into it
};

struct HistoryEvent {
  std::int64_t id = 0, ts_ms = 0;
  std::string kind, subject, detail;
};

struct EventQuery {
  std::string kind;            // exact; empty: any
  std::string subject_prefix;  // empty: any
  std::string text;            // substring of the detail or subject; empty: any
  std::int64_t from_ms = 0, to_ms = INT64_MAX;
  std::int64_t before_id = 0;  // 0: from the newest
  std::size_t limit = 100;
};

class History {
 public:
  enum Resolution : int { raw = 0, minute = 1, hour = 2 };

  // `path` ":memory:" keeps the history for this process only (a head without --state).
  explicit History(const std::string& path, HistoryOptions options = {});
  ~History();
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  void record(const std::string& series, std::int64_t ts_ms, double value);
  void event(std::int64_t ts_ms, const std::string& kind, const std::string& subject, const std::string& detail);
  // Writes what is buffered (one transaction).
  void flush();
  // Events recorded and not yet written (the head writes them at its next tick, not a second later: an event
  // is what a crash must not lose).
  bool events_pending() const;
  // Deletes points and events older than their retention at `now_ms`; returns the rows deleted.
  std::size_t compact(std::int64_t now_ms);

  // Points of `series` in [from_ms, to_ms], oldest first; `used` (optional) says which resolution answered.
  std::vector<HistoryPoint> points(const std::string& series, std::int64_t from_ms, std::int64_t to_ms,
                                   std::size_t max_points = 1000, Resolution* used = nullptr);
  // Names of the series that start with `prefix`, sorted.
  std::vector<std::string> series(const std::string& prefix = "");
  std::vector<HistoryEvent> events(const EventQuery& q);

  // Called (on the recording thread, outside the history's lock) with each event as it is recorded; one
  // listener (the dashboard's streams); nullptr removes it.
  void on_event(std::function<void(const HistoryEvent&)> listener);

  const HistoryOptions& options() const { return options_; }
  const std::string& path() const { return path_; }

 private:
  struct SeriesState {
    std::int64_t id = 0;
    std::int64_t last_raw = INT64_MIN;  // time of the last raw point kept
  };
  struct Delta {  // values recorded into one point since the last flush
    double sum = 0, min = 0, max = 0;
    std::int64_t count = 0;
  };
  SeriesState& state_of(const std::string& series);
  void flush_locked();
  void exec(const char* statement);

  mutable std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
  HistoryOptions options_;
  std::int64_t latest_ms_ = INT64_MIN;  // the newest time recorded: "now" for choosing a resolution
  std::map<std::string, SeriesState> series_;
  std::map<std::tuple<std::int64_t, int, std::int64_t>, Delta> pending_;  // (series id, resolution, time)
  std::vector<HistoryEvent> pending_events_;
  std::mutex listener_mu_;
  std::function<void(const HistoryEvent&)> listener_;
};

}  // namespace iogrid::runtime::head
