// History: series at three resolutions with retention, events searched and paged, everything back after a reopen.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>

#include "iogrid/core/errors.hpp"
#include "runtime/head/history.hpp"

using namespace iogrid::runtime::head;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kMin = 60'000, kHour = 3'600'000;
constexpr std::int64_t kT0 = 1'800'000'000'000;  // a Unix time in ms on a whole hour

fs::path scratch(const std::string& name) {
  auto d = fs::temp_directory_path() / ("iogrid-history-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

}  // namespace

TEST_CASE("history keeps raw points at most one per interval, and minute and hour buckets of every value", "[history]") {
  HistoryOptions o;
  o.raw_interval = 10s;
  History h(":memory:", o);
  // One value a second for two hours: 7,200 values, 1,0 to 7,200.
  for (std::int64_t i = 0; i < 7200; ++i) h.record("gpu/a/0/temperature_c", kT0 + i * 1000, double(i + 1));
  History::Resolution used{};
  auto raw = h.points("gpu/a/0/temperature_c", kT0, kT0 + 2 * kHour, 1000, &used);
  // 720 raw points (one per 10 s) fit in 1,000.
  CHECK(used == History::raw);
  REQUIRE(raw.size() == 720);
  CHECK(raw[0].ts_ms == kT0);
  CHECK(raw[1].ts_ms == kT0 + 10'000);
  CHECK(raw[1].mean == 11.0);
  // Asking for at most 200 points: minute buckets (120 of them), each the mean, min and max of its 60 values.
  auto minutes = h.points("gpu/a/0/temperature_c", kT0, kT0 + 2 * kHour, 200, &used);
  CHECK(used == History::minute);
  REQUIRE(minutes.size() == 120);
  CHECK(minutes[1].ts_ms == kT0 + kMin);
  CHECK(minutes[1].count == 60);
  CHECK(minutes[1].min == 61.0);
  CHECK(minutes[1].max == 120.0);
  CHECK(minutes[1].mean == Approx(90.5));
  // At most 2 points: the two hour buckets.
  auto hours = h.points("gpu/a/0/temperature_c", kT0, kT0 + 2 * kHour, 2, &used);
  CHECK(used == History::hour);
  REQUIRE(hours.size() == 2);
  CHECK(hours[0].count == 3600);
  CHECK(hours[1].mean == Approx((3601.0 + 7200.0) / 2));
  // At most 1: the hours merged, weighted by their counts.
  auto one = h.points("gpu/a/0/temperature_c", kT0, kT0 + 2 * kHour, 1);
  REQUIRE(one.size() == 1);
  CHECK(one[0].count == 7200);
  CHECK(one[0].mean == Approx(3600.5));
  CHECK(one[0].min == 1.0);
  CHECK(one[0].max == 7200.0);
  // Unknown series: nothing; names by prefix.
  CHECK(h.points("gpu/zz/0/power_w", kT0, kT0 + kHour).empty());
  h.record("gpu/a/1/power_w", kT0, 300);
  h.record("gpu/b/0/power_w", kT0, 200);
  CHECK(h.series("gpu/a/") == std::vector<std::string>{"gpu/a/0/temperature_c", "gpu/a/1/power_w"});
  CHECK(h.series().size() == 3);
}

TEST_CASE("history thins with age: each resolution is deleted after its retention, queries fall back to coarser ones",
          "[history]") {
  HistoryOptions o;
  o.raw_interval = 10s;
  o.raw_keep = 1h;
  o.minute_keep = 24h;
  o.hour_keep = 24h * 30;
  o.events_keep = 24h * 2;
  History h(":memory:", o);
  // A value every 10 s for 3 days.
  const std::int64_t end = kT0 + 72 * kHour;
  for (std::int64_t t = kT0; t < end; t += 10'000) h.record("util", t, 50.0);
  h.event(kT0, "node", "a", "joined");
  h.event(end - kHour, "node", "a", "dead: no heartbeat");
  const auto deleted = h.compact(end);
  CHECK(deleted > 0);
  History::Resolution used{};
  // The last half hour: raw still there.
  CHECK(h.points("util", end - kHour / 2, end, 1000, &used).size() == 180);
  CHECK(used == History::raw);
  // The last 12 hours: raw no longer reaches back; minutes do (720 of them).
  CHECK(h.points("util", end - 12 * kHour, end, 1000, &used).size() == 720);
  CHECK(used == History::minute);
  // Two days back: only hours remain there.
  auto old = h.points("util", kT0, kT0 + 24 * kHour - 1, 1000, &used);
  CHECK(used == History::hour);
  CHECK(old.size() == 24);
  // Events older than their retention are gone.
  auto ev = h.events({});
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].detail == "dead: no heartbeat");
}

TEST_CASE("history events are searched by kind, subject and text, newest first, and paged by id", "[history]") {
  History h(":memory:");
  for (int i = 0; i < 250; ++i)
    h.event(kT0 + i, i % 2 ? "job" : "node", (i % 2 ? "job-" : "gpu-box-") + std::to_string(i),
            i % 5 == 0 ? "died: no heartbeat for 2501 ms" : "ok");
  EventQuery q;
  q.limit = 100;
  auto page1 = h.events(q);
  REQUIRE(page1.size() == 100);
  CHECK(page1.front().ts_ms == kT0 + 249);
  q.before_id = page1.back().id;
  auto page2 = h.events(q);
  REQUIRE(page2.size() == 100);
  CHECK(page2.front().id == page1.back().id - 1);
  q.before_id = page2.back().id;
  CHECK(h.events(q).size() == 50);
  EventQuery nodes;
  nodes.kind = "node";
  nodes.limit = 1000;
  CHECK(h.events(nodes).size() == 125);
  nodes.text = "no heartbeat";
  CHECK(h.events(nodes).size() == 25);  // even i divisible by 5: i = 0, 10, ..., 240
  EventQuery prefix;
  prefix.subject_prefix = "job-1";
  prefix.limit = 1000;
  for (const auto& e : h.events(prefix)) CHECK(e.subject.rfind("job-1", 0) == 0);
  // A search string with SQL's wildcard characters means itself.
  EventQuery odd;
  odd.text = "%";
  CHECK(h.events(odd).empty());
}

TEST_CASE("history survives a restart: points, open buckets and events are all there after reopening", "[history]") {
  const auto dir = scratch("reopen");
  const auto path = (dir / "history.db").string();
  {
    History h(path);
    for (int i = 0; i < 30; ++i) h.record("power", kT0 + i * 1000, 100.0);  // half a minute
    h.event(kT0, "node", "a", "joined");
  }  // closed without an explicit flush
  {
    History h(path);
    for (int i = 30; i < 60; ++i) h.record("power", kT0 + i * 1000, 200.0);  // the same minute, after the restart
    History::Resolution used{};
    auto m = h.points("power", kT0, kT0 + kMin, 1, &used);
    REQUIRE(m.size() == 1);
    CHECK(m[0].count == 60);  // the minute bucket was completed, not replaced
    CHECK(m[0].mean == Approx(150.0));
    CHECK(m[0].min == 100.0);
    CHECK(m[0].max == 200.0);
    auto ev = h.events({});
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].subject == "a");
  }
  fs::remove_all(dir);
}

TEST_CASE("history options parse from one flag and refuse what they cannot mean", "[history]") {
  auto o = parse_history_options("raw=2h,minute=14d,hour=1000d,events=30d,interval=5s");
  CHECK(o.raw_keep == 2h);
  CHECK(o.minute_keep == 24h * 14);
  CHECK(o.hour_keep == 24h * 1000);
  CHECK(o.events_keep == 24h * 30);
  CHECK(o.raw_interval == 5s);
  CHECK(parse_history_options("").raw_keep == HistoryOptions{}.raw_keep);
  CHECK_THROWS_WITH(parse_history_options("raw=forever"), Catch::Contains("'raw=forever'") && Catch::Contains("duration"));
  CHECK_THROWS_WITH(parse_history_options("raw=-1h"), Catch::Contains("positive"));
  CHECK_THROWS_WITH(parse_history_options("week=2d"), Catch::Contains("unknown name 'week'"));
  CHECK_THROWS_WITH(parse_history_options("raw"), Catch::Contains("NAME=DURATION"));
  CHECK_THROWS_AS(History("/proc/no/such/dir/history.db"), iogrid::core::Error);
}

TEST_CASE("history counts a value once whether it is in memory, checkpointed or both", "[history]") {
  History h(":memory:");
  for (int i = 0; i < 20; ++i) h.record("util", kT0 + i * 1000, 10.0);
  auto before = h.points("util", kT0, kT0 + kMin - 1, 1);  // only in memory so far
  REQUIRE(before.size() == 1);
  CHECK(before[0].count == 20);
  h.flush();  // a checkpoint: the open minute is written as it stands
  for (int i = 20; i < 40; ++i) h.record("util", kT0 + i * 1000, 40.0);
  auto after = h.points("util", kT0, kT0 + kMin - 1, 1);  // half in the database, half in memory
  REQUIRE(after.size() == 1);
  CHECK(after[0].count == 40);
  CHECK(after[0].mean == Approx(25.0));
  CHECK(after[0].min == 10.0);
  CHECK(after[0].max == 40.0);
  // The next minute closes this one: the rest is queued and written once.
  h.record("util", kT0 + kMin, 0.0);
  h.flush();
  auto closed = h.points("util", kT0, kT0 + kMin - 1, 1);
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].count == 40);
}

TEST_CASE("history written in the background is in the database for another reader", "[history]") {
  const auto dir = scratch("background");
  const auto path = (dir / "history.db").string();
  History h(path);
  h.event(kT0, "node", "gpu-box", "dead: no heartbeat");
  for (int i = 0; i < 10; ++i) h.record("power", kT0 + i * 10'000, 100.0 + i);
  h.flush_in_background();
  // A second reader (as after a crash of this process) sees the event and the raw points once the writer ran.
  std::size_t seen = 0;
  for (int tries = 0; tries < 200 && seen < 10; ++tries) {
    std::this_thread::sleep_for(10ms);
    History other(path);
    if (other.events({}).size() == 1) seen = other.points("power", kT0, kT0 + 2 * kMin, 1000).size();
  }
  CHECK(seen == 10);
  fs::remove_all(dir);
}
