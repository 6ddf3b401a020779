#include "iogrid/tune/trial.hpp"

#include <cmath>
#include <cstdio>

#include "iogrid/errors.hpp"

namespace iogrid::tune {

std::string Value::str() const {
  if (is_text) return text;
  char buf[64];
  if (number == std::floor(number) && std::fabs(number) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", number);
  else
    std::snprintf(buf, sizeof buf, "%.4g", number);
  return buf;
}

double Params::number(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) throw Error("iogrid: the trial has no parameter '" + name + "' (it has: " + str() + ")");
  if (it->second.is_text) throw Error("iogrid: parameter '" + name + "' is the text '" + it->second.text + "', not a number");
  return it->second.number;
}

std::int64_t Params::integer(const std::string& name) const { return std::llround(number(name)); }

const std::string& Params::text(const std::string& name) const {
  auto it = values.find(name);
  if (it == values.end()) throw Error("iogrid: the trial has no parameter '" + name + "' (it has: " + str() + ")");
  if (!it->second.is_text) throw Error("iogrid: parameter '" + name + "' is a number, not a text");
  return it->second.text;
}

std::string Params::str() const {
  std::string s;
  for (const auto& [k, v] : values) {
    if (!s.empty()) s += ' ';
    s += k + "=" + v.str();
  }
  return s;
}

const char* to_string(TrialStatus s) {
  switch (s) {
    case TrialStatus::pending: return "pending";
    case TrialStatus::running: return "running";
    case TrialStatus::paused: return "paused";
    case TrialStatus::stopped: return "stopped";
    case TrialStatus::done: return "done";
    case TrialStatus::failed: return "failed";
  }
  return "?";
}

double Trial::metric(const std::string& name, int iteration) const {
  if (history.empty()) return std::nan("");
  const int at = iteration <= 0 ? int(history.size()) : iteration;
  if (at > int(history.size())) return std::nan("");
  const auto& m = history[std::size_t(at - 1)];
  auto it = m.find(name);
  return it == m.end() ? std::nan("") : it->second;
}

bool Objective::better(double a, double b) const {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return mode == "min" ? a < b : a > b;
}

}  // namespace iogrid::tune
