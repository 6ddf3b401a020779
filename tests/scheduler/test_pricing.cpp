// Posted prices (scheduler/pricing.hpp): the controller's steps on hand-computed cases, its bounds, tiers,
// quotes, and the price book's rounds and saved form.
#include <catch2/catch.hpp>

#include "scheduler/pricing.hpp"

using namespace iogrid::sched;

TEST_CASE("the price controller moves by its formula, bounded per round, between floor and cap", "[pricing]") {
  const PricingRules r;
  // At the target with nothing queued: unchanged.
  CHECK(next_price(2.0, {100, 80, 0}, r) == Approx(2.0));
  // Utilisation 0.88: step = 0.5 x 0.08 / 0.8 = 0.05 -> 2.10.
  CHECK(next_price(2.0, {100, 88, 0}, r) == Approx(2.1));
  // Utilisation 0.72 and 4 GPUs queued of 100: 0.5 x -0.1 + 0.25 x 0.04 = -0.04 -> 1.92.
  CHECK(next_price(2.0, {100, 72, 4}, r) == Approx(1.92));
  // Full with a long queue: capped at +12.5%; empty: at -12.5%.
  CHECK(next_price(2.0, {100, 100, 500}, r) == Approx(2.25));
  CHECK(next_price(2.0, {100, 0, 0}, r) == Approx(1.75));
  // Floor and cap.
  CHECK(next_price(0.05, {100, 0, 0}, r) == Approx(0.05));
  CHECK(next_price(49.0, {100, 100, 100}, r) == Approx(50.0));
  // No capacity at this price: up by max_step while work waits, else unchanged.
  CHECK(next_price(1.0, {0, 0, 8}, r) == Approx(1.125));
  CHECK(next_price(1.0, {0, 0, 0}, r) == Approx(1.0));
}

TEST_CASE("tiers and quotes: spot is cheaper and waits, urgent dearer and first, max_price says whether it runs", "[pricing]") {
  CHECK(tier_rule(Tier::spot).multiplier == Approx(0.6));
  CHECK(tier_rule(Tier::spot).priority < tier_rule(Tier::standard).priority);
  CHECK(tier_rule(Tier::urgent).priority > tier_rule(Tier::standard).priority);
  CHECK(parse_tier("urgent") == Tier::urgent);
  CHECK_FALSE(parse_tier("cheap"));
  const auto q = quote(2.0, Tier::urgent, 4, 2.5, 2.5, 1000);
  CHECK(q.price_per_gpu_hour == Approx(3.0));
  CHECK(q.total == Approx(30.0));
  CHECK(q.valid_until_ms == 61000);
  CHECK_FALSE(q.within_max_price);  // 3.0 > 2.5
  CHECK(quote(2.0, Tier::spot, 1, 1, 2.5, 0).within_max_price);
  CHECK(quote(2.0, Tier::urgent, 1, 1, 0, 0).within_max_price);  // no ceiling
}

TEST_CASE("the price book keeps a price and its history per market, and survives its saved form", "[pricing]") {
  PriceBook b({}, 2.0, 3);
  const auto m = PriceBook::market("H100", "eu");
  CHECK(m == "H100/eu");
  CHECK(PriceBook::market("A100", "") == "A100/any");
  CHECK(b.price(m) == Approx(2.0));  // never priced: the initial price
  for (int i = 0; i < 5; ++i) b.round({{m, {10, 10, 5}}}, 1000 * i);
  CHECK(b.price(m) == Approx(2.0 * 1.125 * 1.125 * 1.125 * 1.125 * 1.125));
  REQUIRE(b.history(m).size() == 3);  // the last 3 rounds kept
  CHECK(b.history(m).back().time_ms == 4000);
  CHECK(b.history(m).back().utilisation == Approx(1.0));
  auto again = PriceBook::load(b.save());
  CHECK(again.price(m) == Approx(b.price(m)));
  CHECK(again.history(m).size() == 3);
  CHECK_THROWS_AS(PriceBook::load("price H100/eu -3\n"), std::invalid_argument);
  CHECK_THROWS_AS(PriceBook::load("cost x 1\n"), std::invalid_argument);
}
