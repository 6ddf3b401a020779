#include "iogrid/tune/space.hpp"

#include <cmath>
#include <random>

#include "iogrid/errors.hpp"

namespace iogrid::tune {

namespace {
std::vector<Value> numbers(std::vector<double> v) {
  std::vector<Value> out;
  for (double x : v) out.push_back({.number = x});
  return out;
}
std::vector<Value> texts(std::vector<std::string> v) {
  std::vector<Value> out;
  for (auto& x : v) out.push_back({.text = std::move(x), .is_text = true});
  return out;
}
// Uniform in [0, 1) from 53 random bits: the same on every platform (std's distributions are not).
double unit(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

Value sample(const Domain& d, std::mt19937_64& rng) {
  switch (d.kind) {
    case Domain::Kind::grid:
    case Domain::Kind::choice: return d.values[std::size_t(rng() % d.values.size())];
    case Domain::Kind::uniform: return {.number = d.low + (d.high - d.low) * unit(rng)};
    case Domain::Kind::log_uniform:
      return {.number = std::exp(std::log(d.low) + (std::log(d.high) - std::log(d.low)) * unit(rng))};
    case Domain::Kind::integer: {
      const auto span = std::uint64_t(d.high - d.low) + 1;
      return {.number = d.low + double(rng() % span)};
    }
  }
  return {};
}
}  // namespace

Domain grid(std::vector<double> v) { return {.kind = Domain::Kind::grid, .values = numbers(std::move(v))}; }
Domain grid(std::vector<std::string> v) { return {.kind = Domain::Kind::grid, .values = texts(std::move(v))}; }
Domain choice(std::vector<double> v) { return {.kind = Domain::Kind::choice, .values = numbers(std::move(v))}; }
Domain choice(std::vector<std::string> v) { return {.kind = Domain::Kind::choice, .values = texts(std::move(v))}; }
Domain uniform(double low, double high) { return {.kind = Domain::Kind::uniform, .low = low, .high = high}; }
Domain log_uniform(double low, double high) { return {.kind = Domain::Kind::log_uniform, .low = low, .high = high}; }
Domain integer(std::int64_t low, std::int64_t high) {
  return {.kind = Domain::Kind::integer, .low = double(low), .high = double(high)};
}

Space& Space::add(const std::string& name, Domain d) {
  if (name.empty()) throw Error("iogrid: a search-space parameter needs a name");
  for (const auto& [n, _] : dims_)
    if (n == name) throw Error("iogrid: search-space parameter '" + name + "' is added twice");
  const auto where = "iogrid: search-space parameter '" + name + "': ";
  switch (d.kind) {
    case Domain::Kind::grid:
    case Domain::Kind::choice:
      if (d.values.empty()) throw Error(where + "a grid or choice needs at least one value");
      break;
    case Domain::Kind::uniform:
      if (!(d.low < d.high)) throw Error(where + "uniform needs low < high");
      break;
    case Domain::Kind::log_uniform:
      if (!(d.low > 0 && d.low < d.high)) throw Error(where + "log_uniform needs 0 < low < high");
      break;
    case Domain::Kind::integer:
      if (d.low > d.high) throw Error(where + "integer needs low <= high");
      break;
  }
  dims_.emplace_back(name, std::move(d));
  return *this;
}

std::size_t Space::grid_size() const {
  std::size_t n = 1;
  for (const auto& [_, d] : dims_)
    if (d.kind == Domain::Kind::grid) n *= d.values.size();
  return n;
}

std::vector<Params> Space::generate(Search search, int samples, std::uint64_t seed) const {
  if (dims_.empty()) throw Error("iogrid: the search space is empty");
  if (samples < 1) throw Error("iogrid: a sweep needs at least one sample");
  std::mt19937_64 rng(seed);
  std::vector<Params> out;
  if (search == Search::random) {
    for (int s = 0; s < samples; ++s) {
      Params p;
      for (const auto& [n, d] : dims_) p.values[n] = sample(d, rng);
      out.push_back(std::move(p));
    }
    return out;
  }
  const std::size_t combos = grid_size();
  for (std::size_t c = 0; c < combos; ++c) {
    for (int s = 0; s < samples; ++s) {
      Params p;
      std::size_t rest = c;
      // The last grid parameter varies fastest: decode c from the back.
      for (auto it = dims_.rbegin(); it != dims_.rend(); ++it) {
        if (it->second.kind != Domain::Kind::grid) continue;
        const auto k = it->second.values.size();
        p.values[it->first] = it->second.values[rest % k];
        rest /= k;
      }
      for (const auto& [n, d] : dims_)
        if (d.kind != Domain::Kind::grid) p.values[n] = sample(d, rng);
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace iogrid::tune
