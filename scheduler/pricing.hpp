// Pricing: a posted price per GPU model and region, moved every pricing round by a documented controller, and
// the urgency tiers a request picks from. Pure code: the head calls it each round with what it measured.
// Assumptions: one market per (GPU model, region); its capacity is the GPUs of live nodes whose own price (their
// reserve) is at or below the posted price, its use the GPUs leased there, its queue the GPUs of standard and
// urgent work waiting for it (spot work takes what is left at its lower price: its waiting does not raise the
// posted price, or the price would climb while cheap providers are full and utilisation falls).
// Rules (the numbers are PricingRules' defaults):
// - Controller (EIP-1559-like, on utilisation and queued demand): each round
//     step  = gain x (utilisation - target) / target  +  queue_gain x min(queued / capacity, 1)
//     price = clamp(price x (1 + clamp(step, -max_step, +max_step)), floor, cap)
//   with target 0.8 (the band 0.7..0.9 is what "recovered" means), gain 0.5, queue_gain 0.25, max_step 0.125
//   (12.5% a round, EIP-1559's bound), floor $0.05, cap $50 per GPU-hour. A market without capacity rises by
//   max_step when work waits for it and stays put otherwise. The price never falls below the market's lowest
//   ask: below it nobody sells, so such a price tells nothing and only delays the next work by a round.
// - A provider's own price is its reserve: it gets no work paying less than it (sched::market_ok). A provider
//   asking nothing (an operator's own, unpriced node) is in no market: work there is free, as it asks.
// - Tiers: spot pays 0.6x the posted price and waits behind everything (priority -1); standard pays 1x
//   (priority 0); urgent pays 1.5x and goes first (priority 1). A request's max_price caps what it will pay:
//   below its tier's price it waits (or is refused when it asks for a quote).
// - Quotes: price per GPU-hour for the tier, total for the GPUs and hours asked, valid for quote_validity
//   (60 s): the price a reservation made within it is charged.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace iogrid::sched {

struct PricingRules {
  double target = 0.8;      // utilisation the controller steers to
  double band_low = 0.7;    // "inside the band": recovered
  double band_high = 0.9;
  double gain = 0.5;
  double queue_gain = 0.25;
  double max_step = 0.125;  // the largest relative move in one round
  double floor = 0.05;      // $ per GPU-hour
  double cap = 50.0;
  std::chrono::seconds quote_validity{60};
};

enum class Tier { spot, standard, urgent };
struct TierRule {
  double multiplier;
  int priority;
};
TierRule tier_rule(Tier t);                      // spot {0.6, -1}, standard {1, 0}, urgent {1.5, 1}
std::optional<Tier> parse_tier(const std::string& name);  // "spot" | "standard" | "urgent"
std::string to_string(Tier t);

// What a market looked like over the last round.
struct MarketSample {
  double capacity = 0;  // GPUs offered at or below the posted price
  double used = 0;      // GPUs leased
  double queued = 0;    // GPUs waiting
  double min_ask = 0;   // the lowest ask of the market's live providers (0: unknown)
};
inline double utilisation(const MarketSample& s) { return s.capacity > 0 ? s.used / s.capacity : 0; }

// The controller's next price.
double next_price(double price, const MarketSample& s, const PricingRules& r = {});

struct Quote {
  Tier tier = Tier::standard;
  double price_per_gpu_hour = 0;  // the posted price x the tier's multiplier
  double total = 0;               // x GPUs x hours
  std::int64_t valid_until_ms = 0;
  bool within_max_price = true;   // false: the request's max_price is below the price (it would wait)
};
Quote quote(double posted, Tier tier, double gpus, double hours, double max_price, std::int64_t now_ms,
            const PricingRules& r = {});

// Posted prices per market ("MODEL/REGION"), with each round's price kept (the last `keep` rounds).
class PriceBook {
 public:
  explicit PriceBook(PricingRules r = {}, double initial = 1.0, std::size_t keep = 1440) : rules_(r), initial_(initial), keep_(keep) {}
  static std::string market(const std::string& model, const std::string& region) { return model + "/" + (region.empty() ? "any" : region); }
  double price(const std::string& market) const;  // the initial price for a market never seen
  void set(const std::string& market, double price) { prices_[market] = price; }  // an operator's starting price
  bool has(const std::string& market) const { return prices_.count(market) > 0; }
  // One pricing round: each sampled market moves by the controller. Returns the markets' new prices.
  std::map<std::string, double> round(const std::map<std::string, MarketSample>& samples, std::int64_t now_ms);
  struct Point {
    std::int64_t time_ms;
    double price, utilisation;
  };
  const std::deque<Point>& history(const std::string& market) const;
  std::vector<std::string> markets() const;
  const PricingRules& rules() const { return rules_; }
  // Text form for the head's state (prices and history), and back; load throws std::invalid_argument.
  std::string save() const;
  static PriceBook load(const std::string& text, PricingRules r = {}, double initial = 1.0);

 private:
  PricingRules rules_;
  double initial_;
  std::size_t keep_;
  std::map<std::string, double> prices_;
  std::map<std::string, std::deque<Point>> history_;
};

}  // namespace iogrid::sched
