// TaskStats: what an owner reports of its tasks and actors. A report carries the actors that changed since
// the one before, and an actor's death is never forgotten before a report has carried it.
#include <catch2/catch.hpp>

#include "runtime/task_stats.hpp"

using iogrid::runtime::TaskStats;

TEST_CASE("actor reports carry what changed since the last one and exact counts by state", "[runtime][actors]") {
  TaskStats s;
  TaskStats::Cursor c;
  const auto a = s.actor_created("Tally"), b = s.actor_created("Model");
  auto r = s.report(c);
  REQUIRE(r["actors"].size() == 2);
  CHECK(r["actors"][0][2] == "pending");
  CHECK(r["actor_states"]["pending"] == 2);
  CHECK(s.report(c)["actors"].empty());  // nothing new

  s.actor_changed(a, "alive", "gpu-1", 0);
  s.actor_changed(b, "alive", "gpu-2", 0);
  s.actor_changed(b, "restarting", "", 1, "lost its worker");
  s.actor_changed(b, "alive", "gpu-3", 1);
  s.actor_changed(a, "dead", "gpu-1", 0, "was killed");
  s.actor_changed(a, "alive", "gpu-1", 0);  // dead is for good
  r = s.report(c);
  REQUIRE(r["actors"].size() == 2);
  CHECK(r["actors"][0] == nlohmann::json({a, "Tally", "dead", "gpu-1", 0, "was killed", r["actors"][0][6]}));
  CHECK(r["actors"][1][2] == "alive");
  CHECK(r["actors"][1][3] == "gpu-3");
  CHECK(r["actors"][1][4] == 1);
  CHECK(r["actor_states"] == nlohmann::json({{"pending", 0}, {"alive", 1}, {"restarting", 0}, {"dead", 1}}));
}

TEST_CASE("dead actors are forgotten only after a report carried them, or past twice the bound", "[runtime][actors]") {
  TaskStats s;
  TaskStats::Cursor c;
  const auto n = TaskStats::kMaxDeadActors + 10;
  for (std::size_t i = 0; i < n; ++i) s.actor_changed(s.actor_created("a"), "dead", "", 0, "gone");
  CHECK(s.actors().size() == n);                 // none reported yet: all kept
  CHECK(s.report(c)["actors"].size() == n);      // every death reaches the head
  CHECK(s.actors().size() == TaskStats::kMaxDeadActors);
  CHECK(s.report(c)["actor_states"]["dead"] == n);  // counts stay exact
  // Nobody reporting: bounded at twice the limit.
  TaskStats quiet;
  for (std::size_t i = 0; i < 3 * TaskStats::kMaxDeadActors; ++i) quiet.actor_changed(quiet.actor_created("a"), "dead", "", 0, "");
  CHECK(quiet.actors().size() == 2 * TaskStats::kMaxDeadActors);
}
