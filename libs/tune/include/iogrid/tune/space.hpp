// Search spaces: named parameters, each a grid, a choice, a uniform or log-uniform range, or an integer range.
//
//   iogrid::tune::Space s;
//   s.add("lr", tune::log_uniform(1e-3, 1e-1))
//    .add("hidden", tune::grid({64, 128, 256}))
//    .add("optimizer", tune::choice({"sgd", "adam"}));
//
// Rules:
// - Grid search: the cartesian product of the grid parameters (in the order they were added, the last varying
//   fastest), each combination repeated `samples` times; the other parameters are sampled per trial.
// - Random search: `samples` trials, every parameter sampled (a grid parameter as a choice among its values).
// - Sampling is seeded: the same space, search, samples and seed give the same trials (a resumed sweep relies on it).
//   uniform: [low, high); log_uniform: exp of uniform in [ln low, ln high); integer: every value in [low, high]
//   equally likely.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "iogrid/tune/trial.hpp"

namespace iogrid::tune {

struct Domain {
  enum class Kind { grid, choice, uniform, log_uniform, integer };
  Kind kind = Kind::choice;
  std::vector<Value> values;  // grid, choice
  double low = 0, high = 0;   // uniform, log_uniform, integer (inclusive)
};
Domain grid(std::vector<double> values);
Domain grid(std::vector<std::string> values);
Domain choice(std::vector<double> values);
Domain choice(std::vector<std::string> values);
// Literal lists: grid({32, 64}), choice({"sgd", "adam"}).
inline Domain grid(std::initializer_list<double> v) { return grid(std::vector<double>(v)); }
inline Domain grid(std::initializer_list<const char*> v) { return grid(std::vector<std::string>(v.begin(), v.end())); }
inline Domain choice(std::initializer_list<double> v) { return choice(std::vector<double>(v)); }
inline Domain choice(std::initializer_list<const char*> v) { return choice(std::vector<std::string>(v.begin(), v.end())); }
Domain uniform(double low, double high);
Domain log_uniform(double low, double high);
Domain integer(std::int64_t low, std::int64_t high);

enum class Search { grid, random };

class Space {
 public:
  // Throws iogrid::Error for an empty or duplicate name, an empty grid/choice, low >= high (low > high for
  // integer), or a log-uniform range that is not positive.
  Space& add(const std::string& name, Domain d);
  std::vector<Params> generate(Search search, int samples, std::uint64_t seed) const;
  std::size_t grid_size() const;  // combinations of the grid parameters (1 without any)
  bool empty() const { return dims_.empty(); }

 private:
  std::vector<std::pair<std::string, Domain>> dims_;
};

}  // namespace iogrid::tune
