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
// - Recording never touches the database: values go into memory (a series gets its id there too) and a writer
//   thread of the history's own writes them, one transaction per batch, when `flush_in_background` asks (the
//   head asks once a second, and at its next tick after an event). So a head with 10,000 nodes does not wait on
//   SQLite. Raw points, closed buckets and events go at every flush; the open hour buckets of every series only
//   at a checkpoint (`flush_in_background(true)`: the head's every 5 minutes), all open buckets at `flush` (and
//   when the history closes), written as they stand and completed by later writes, also after a restart. So a
//   head killed outright loses at most its open minute (the raw points of it are kept) and 5 minutes of its open
//   hour. A query sees what is still in memory as well.
// - Thread-safe: the head's thread records, the dashboard's threads query, the writer writes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
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
  // Writes everything recorded, open buckets included, on the calling thread (one transaction); returns when
  // it is in the database.
  void flush();
  // Asks the writer thread to write what is recorded (with `checkpoint`, the open hour buckets too); returns at
  // once.
  void flush_in_background(bool checkpoint = false);
  // Events recorded and not yet handed to the writer (the head hands them over at its next tick, not a second
  // later: an event is what a crash must not lose).
  bool events_pending() const;
  // Deletes points and events older than their retention at `now_ms`; returns the rows deleted.
  std::size_t compact(std::int64_t now_ms);
  // The same on the writer thread; returns at once.
  void compact_in_background(std::int64_t now_ms);

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
  struct Delta {  // values recorded into one point
    double sum = 0, min = 0, max = 0;
    std::int64_t count = 0;
    void add(double v);
    void merge(const Delta& o);  // another point's values into this one
  };
  struct Open {  // a minute or hour bucket still filling: what it holds that the database does not
    std::int64_t ts = INT64_MIN;
    Delta unwritten;
  };
  struct SeriesState {
    std::int64_t id = 0;
    std::int64_t last_raw = INT64_MIN;  // time of the last raw point kept
    Open open[2];                       // minute, hour
  };
  struct Row {
    std::int64_t series;
    int res;
    std::int64_t ts;
    Delta d;
  };
  struct Batch {  // what one transaction writes
    std::vector<std::pair<std::int64_t, std::string>> series;
    std::vector<Row> rows;
    std::vector<HistoryEvent> events;
    bool empty() const { return series.empty() && rows.empty() && events.empty(); }
  };
  SeriesState& state_of(const std::string& series);
  static constexpr std::size_t kRowsPerTransaction = 4096;
  enum class Checkpoint { none, hours, all };  // which open buckets a take queues first
  // Takes the series and events queued and at most `max_rows` rows under mu_; the caller holds db_mu_ until
  // they are written.
  Batch take(Checkpoint checkpoint, std::size_t max_rows);
  void write(const Batch& b);
  // One transaction of the writer thread; false when there was nothing to write.
  bool write_some(Checkpoint checkpoint);
  // db_mu_ for a query, which the writer lets in between its transactions.
  std::unique_lock<std::mutex> lock_for_query();
  std::size_t compact_locked(std::int64_t now_ms);
  void writer_loop();
  void exec(const char* statement);

  mutable std::mutex mu_;  // the in-memory state below
  std::mutex db_mu_;       // db_; taken before mu_ when both are held
  std::atomic<int> queries_waiting_{0};
  sqlite3* db_ = nullptr;
  std::string path_;
  HistoryOptions options_;
  std::int64_t latest_ms_ = INT64_MIN;  // the newest time recorded: "now" for choosing a resolution
  std::int64_t next_id_ = 1, next_event_id_ = 1;  // ids are given in memory, so a query can page queued events
  std::unordered_map<std::string, SeriesState> series_;
  Batch queued_;
  // The writer thread's requests.
  std::condition_variable wake_;
  bool want_flush_ = false, want_checkpoint_ = false, stopping_ = false;
  std::int64_t want_compact_ = 0;
  std::thread writer_;
  std::mutex listener_mu_;
  std::function<void(const HistoryEvent&)> listener_;
};

}  // namespace iogrid::runtime::head
