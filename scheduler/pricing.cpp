#include "scheduler/pricing.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace iogrid::sched {

TierRule tier_rule(Tier t) {
  switch (t) {
    case Tier::spot: return {0.6, -1};
    case Tier::urgent: return {1.5, 1};
    case Tier::standard: break;
  }
  return {1.0, 0};
}

std::optional<Tier> parse_tier(const std::string& name) {
  if (name == "spot") return Tier::spot;
  if (name == "standard" || name.empty()) return Tier::standard;
  if (name == "urgent") return Tier::urgent;
  return std::nullopt;
}

std::string to_string(Tier t) { return t == Tier::spot ? "spot" : t == Tier::urgent ? "urgent" : "standard"; }

double next_price(double price, const MarketSample& s, const PricingRules& r) {
  double step = 0;
  if (s.capacity > 0) {
    step = r.gain * (utilisation(s) - r.target) / r.target + r.queue_gain * std::min(s.queued / s.capacity, 1.0);
  } else if (s.queued > 0) {
    step = r.max_step;  // nobody offers at this price and work waits: raise it
  }
  step = std::clamp(step, -r.max_step, r.max_step);
  const double next = price * (1 + step);
  return std::clamp(s.min_ask > 0 ? std::max(next, s.min_ask) : next, r.floor, r.cap);
}

Quote quote(double posted, Tier tier, double gpus, double hours, double max_price, std::int64_t now_ms, const PricingRules& r) {
  Quote q;
  q.tier = tier;
  q.price_per_gpu_hour = posted * tier_rule(tier).multiplier;
  q.total = q.price_per_gpu_hour * std::max(0.0, gpus) * std::max(0.0, hours);
  q.valid_until_ms = now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(r.quote_validity).count();
  q.within_max_price = max_price <= 0 || q.price_per_gpu_hour <= max_price;
  return q;
}

double PriceBook::price(const std::string& market) const {
  auto it = prices_.find(market);
  return it == prices_.end() ? initial_ : it->second;
}

std::map<std::string, double> PriceBook::round(const std::map<std::string, MarketSample>& samples, std::int64_t now_ms) {
  for (const auto& [m, s] : samples) {
    const double p = next_price(price(m), s, rules_);
    prices_[m] = p;
    auto& h = history_[m];
    h.push_back({now_ms, p, utilisation(s)});
    while (h.size() > keep_) h.pop_front();
  }
  return prices_;
}

const std::deque<PriceBook::Point>& PriceBook::history(const std::string& market) const {
  static const std::deque<Point> none;
  auto it = history_.find(market);
  return it == history_.end() ? none : it->second;
}

std::vector<std::string> PriceBook::markets() const {
  std::vector<std::string> out;
  for (const auto& [m, p] : prices_) out.push_back(m);
  return out;
}

std::string PriceBook::save() const {
  std::ostringstream os;
  os.precision(17);
  for (const auto& [m, p] : prices_) {
    os << "price " << m << ' ' << p << '\n';
    for (const auto& pt : history(m)) os << "point " << m << ' ' << pt.time_ms << ' ' << pt.price << ' ' << pt.utilisation << '\n';
  }
  return os.str();
}

PriceBook PriceBook::load(const std::string& text, PricingRules r, double initial) {
  PriceBook b(r, initial);
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    std::istringstream w(line);
    std::string kind, market;
    if (!(w >> kind >> market)) throw std::invalid_argument("prices line " + std::to_string(n) + ": expected 'price' or 'point'");
    if (kind == "price") {
      double p = 0;
      if (!(w >> p) || !(p > 0)) throw std::invalid_argument("prices line " + std::to_string(n) + ": bad price");
      b.prices_[market] = p;
    } else if (kind == "point") {
      Point pt{};
      if (!(w >> pt.time_ms >> pt.price >> pt.utilisation)) throw std::invalid_argument("prices line " + std::to_string(n) + ": bad point");
      b.history_[market].push_back(pt);
    } else {
      throw std::invalid_argument("prices line " + std::to_string(n) + ": unknown kind '" + kind + "'");
    }
  }
  return b;
}

}  // namespace iogrid::sched
