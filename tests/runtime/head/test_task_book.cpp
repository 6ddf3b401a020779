// TaskBook: owners' task reports summed per job, spans and failures kept within bounds, hostile reports refused.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "runtime/head/task_book.hpp"

using iogrid::runtime::head::TaskBook;

namespace {

std::string report(int finished, int failed, const std::vector<std::pair<std::string, std::int64_t>>& spans,
                   const std::vector<std::string>& failures = {}) {
  nlohmann::json r;
  r["tasks"]["task"] = {{"submitted", finished + failed + 3}, {"waiting", 2}, {"running", 1}, {"finished", finished}, {"failed", failed}};
  r["tasks"]["actor_call"] = {{"submitted", 4}, {"waiting", 0}, {"running", 0}, {"finished", 4}, {"failed", 0}};
  r["duration_buckets"] = {0.01, 0.1};
  r["duration_counts"] = {finished, failed, 0};
  r["duration_sum_s"] = 0.5;
  r["spans"] = nlohmann::json::array();
  for (const auto& [name, end] : spans) r["spans"].push_back({name, "n1", end - 5, end, true, 0});
  r["failures"] = nlohmann::json::array();
  for (const auto& f : failures) r["failures"].push_back({{"ts_ms", 7}, {"name", f}, {"node", "n1"}, {"error", "boom"}, {"root_task", ""}});
  return r.dump();
}

}  // namespace

TEST_CASE("task reports: an owner's latest counts replace its last, owners of a job add up", "[head][tasks]") {
  TaskBook b;
  CHECK(b.summary("job-1").is_null());
  b.report("job-1", 1, report(10, 1, {{"a", 100}, {"b", 110}}, {"a"}));
  b.report("job-1", 1, report(12, 1, {{"c", 120}}, {"a"}));  // totals again; the same failure is not doubled
  b.report("job-1", 2, report(5, 0, {{"d", 130}}));          // a worker submitting nested tasks
  auto s = b.summary("job-1");
  CHECK(s["task"]["finished"] == 17);
  CHECK(s["task"]["failed"] == 1);
  CHECK(s["task"]["waiting"] == 4);
  CHECK(s["actor_call"]["finished"] == 8);
  CHECK(s["duration"]["counts"] == nlohmann::json({17, 1, 0}));
  CHECK(s["duration"]["sum_s"] == 1.0);
  auto d = b.detail("job-1", 0, 100);
  REQUIRE(d["spans"].size() == 4);
  CHECK(d["spans"][3][0] == "d");
  CHECK(d["failures"].size() == 1);
  // Spans after a time, and only the latest `limit`.
  CHECK(b.detail("job-1", 110, 100)["spans"].size() == 2);
  CHECK(b.detail("job-1", 0, 1)["spans"][0][0] == "d");
}

TEST_CASE("task reports are bounded and a malformed one is refused", "[head][tasks]") {
  TaskBook b;
  CHECK_THROWS(b.report("job-1", 1, "not json"));
  CHECK_THROWS(b.report("job-1", 1, R"({"spans": []})"));
  CHECK(b.summary("job-1").is_null());
  // Odd fields are dropped, odd values read as 0, spans of the wrong shape skipped.
  b.report("job-1", 1, R"({"tasks": {"task": {"finished": "lots", "failed": 2}, "x": 1}, "spans": [[1,2,3], ["ok","n",1,2,true,0]], "junk": [1,2,3]})");
  CHECK(b.summary("job-1")["task"]["finished"] == 0);
  CHECK(b.summary("job-1")["task"]["failed"] == 2);
  CHECK(b.detail("job-1", 0, 100)["spans"].size() == 1);
  // A job keeps its latest kSpansPerJob spans.
  std::vector<std::pair<std::string, std::int64_t>> many;
  for (std::size_t i = 0; i < TaskBook::kSpansPerJob + 10; ++i) many.push_back({"t", 1000 + std::int64_t(i)});
  b.report("job-2", 3, report(1, 0, many));
  CHECK(b.detail("job-2", 0, TaskBook::kSpansPerJob * 2)["spans"].size() == TaskBook::kSpansPerJob);
  CHECK(b.spans() == TaskBook::kSpansPerJob + 1);
}
