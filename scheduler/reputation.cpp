#include "scheduler/reputation.hpp"

#include <algorithm>

namespace iogrid::sched {

double update_reputation(double r, Outcome o) {
  auto toward = [&](double target, double step) { return r + step * (target - r); };
  switch (o) {
    case Outcome::task_succeeded: r = toward(1, 0.002); break;
    case Outcome::task_failed: r = toward(0, 0.05); break;
    case Outcome::node_died: r = toward(0, 0.10); break;
    case Outcome::uptime_hour: r = toward(1, 0.01); break;
    case Outcome::verification_passed: r = toward(1, 0.30); break;
    case Outcome::verification_failed: r = std::min(r, 0.1); break;
    case Outcome::check_passed: r = toward(1, 0.02); break;
    case Outcome::check_failed: r = std::min(r * 0.5, 0.1); break;
  }
  return std::clamp(r, 0.0, 1.0);
}

const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::task_succeeded: return "task succeeded";
    case Outcome::task_failed: return "task failed";
    case Outcome::node_died: return "node died";
    case Outcome::uptime_hour: return "an hour of uptime";
    case Outcome::verification_passed: return "verification passed";
    case Outcome::verification_failed: return "verification failed";
    case Outcome::check_passed: return "spot check passed";
    case Outcome::check_failed: return "spot check failed";
  }
  return "?";
}

}  // namespace iogrid::sched
