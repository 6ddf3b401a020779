#include "scheduler/spot_check.hpp"

#include <cmath>

namespace iogrid::sched {

const char* to_string(CheckVerdict v) {
  switch (v) {
    case CheckVerdict::agreed: return "agreed";
    case CheckVerdict::settled: return "settled";
    case CheckVerdict::unsettled: return "unsettled";
    case CheckVerdict::unchecked: return "unchecked";
  }
  return "?";
}

double predicted_catch_probability(double wrong_share, double fraction, std::uint64_t tasks) {
  const double p = wrong_share * fraction;
  if (p <= 0) return 0;
  if (p >= 1) return tasks > 0 ? 1 : 0;
  return -std::expm1(static_cast<double>(tasks) * std::log1p(-p));
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace iogrid::sched
