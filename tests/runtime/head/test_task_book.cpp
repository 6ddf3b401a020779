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

TEST_CASE("actors: each owner's rows replace their last, filtered and paged live first, dead trimmed past the bound",
          "[head][tasks][actors]") {
  TaskBook b;
  auto with_actors = [](nlohmann::json rows, nlohmann::json states) {
    auto r = nlohmann::json::parse(report(0, 0, {}));
    r["actors"] = std::move(rows);
    r["actor_states"] = std::move(states);
    return r.dump();
  };
  b.report("job-1", 1, with_actors({{1, "Tally", "pending", "", 0, "", 100}, {2, "Model", "alive", "gpu-1", 0, "", 110}},
                                   {{"pending", 1}, {"alive", 1}}));
  // The next report carries only what changed: actor 1 came up, then died; a second owner has its own actor 1.
  b.report("job-1", 1, with_actors({{1, "Tally", "dead", "gpu-2", 1, "iogrid: actor 'Tally' was killed", 130}},
                                   {{"alive", 1}, {"dead", 1}}));
  b.report("job-1", 2, with_actors({{1, "Nested", "restarting", "", 2, "lost its worker", 120}}, {{"restarting", 1}}));
  b.report("job-2", 3, with_actors({{1, "Other", "alive", "cpu-1", 0, "", 140}}, {{"alive", 1}}));

  auto all = b.actors("job-1", "", "", 0, 100);
  CHECK(all["total"] == 3);
  CHECK(all["states"]["alive"] == 1);
  CHECK(all["states"]["dead"] == 1);
  CHECK(all["states"]["restarting"] == 1);
  CHECK(all["states"]["pending"] == 0);  // the owner's latest counts replace its last
  REQUIRE(all["actors"].size() == 3);
  CHECK(all["actors"][0]["name"] == "Nested");  // live first, the latest change first
  CHECK(all["actors"][0]["id"] == "2.1");
  CHECK(all["actors"][1]["name"] == "Model");
  CHECK(all["actors"][2]["name"] == "Tally");
  CHECK(all["actors"][2]["state"] == "dead");
  CHECK(all["actors"][2]["restarts"] == 1);
  CHECK(all["actors"][2]["node"] == "gpu-2");
  CHECK(b.actors("job-1", "dead", "", 0, 100)["total"] == 1);
  CHECK(b.actors("job-1", "", "GPU-1", 0, 100)["actors"][0]["name"] == "Model");  // text matches node, name, error
  CHECK(b.actors("job-1", "", "killed", 0, 100)["actors"][0]["name"] == "Tally");
  CHECK(b.actors("", "", "", 0, 100)["total"] == 4);  // every job
  CHECK(b.actors("", "alive", "", 0, 100)["states"]["alive"] == 2);
  auto page = b.actors("job-1", "", "", 1, 1);
  CHECK(page["total"] == 3);
  REQUIRE(page["actors"].size() == 1);
  CHECK(page["actors"][0]["name"] == "Model");
  CHECK(b.summary("job-1")["actors"]["dead"] == 1);

  // Malformed rows are skipped (unknown state, wrong types), the rest kept.
  b.report("job-3", 4, with_actors({{1, "x", "zombie", "", 0, "", 1}, {"2", "x", "alive", "", 0, "", 1}, {3, "ok", "alive", "", 0, "", 1}, 7},
                                   {{"alive", "many"}}));
  CHECK(b.actors("job-3", "", "", 0, 100)["total"] == 1);
  CHECK(b.summary("job-3")["actors"]["alive"] == 0);

  // Past kActorsPerJob the dead that died first go; live ones stay.
  nlohmann::json many = nlohmann::json::array();
  for (std::size_t i = 0; i < TaskBook::kActorsPerJob + 5; ++i)
    many.push_back({i + 10, "a", i < 20 ? "dead" : "alive", "", 0, "", std::int64_t(1000 + i)});
  b.report("job-4", 5, with_actors(many, {{"alive", TaskBook::kActorsPerJob - 15}, {"dead", 20}}));
  auto big = b.actors("job-4", "dead", "", 0, 100);
  CHECK(big["total"] == 15);
  CHECK(b.actors("job-4", "", "", 0, 1)["total"] == TaskBook::kActorsPerJob);
  CHECK(big["actors"].back()["since_ms"] == 1005);  // the five that died first are gone
}
