// A sweep's trials: the parameters a trial runs with, what it reported, and where it stands.
//
//   p.number("lr");  p.integer("hidden");  p.text("optimizer");   // an iogrid::Error names a missing parameter
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "iogrid/serialization.hpp"

namespace iogrid::tune {

// One parameter value: a number (integers are numbers with no fraction) or a text.
struct Value {
  double number = 0;
  std::string text;
  bool is_text = false;
  std::string str() const;  // 0.01, 128, "adam" as adam
  bool operator==(const Value&) const = default;
  IOGRID_SERIALIZE(number, text, is_text)
};

class Params {
 public:
  std::map<std::string, Value> values;

  bool has(const std::string& name) const { return values.count(name) != 0; }
  double number(const std::string& name) const;          // throws for a missing or text parameter
  std::int64_t integer(const std::string& name) const;   // number() rounded to the nearest integer
  const std::string& text(const std::string& name) const;  // throws for a missing or numeric parameter
  double number_or(const std::string& name, double fallback) const { return has(name) ? number(name) : fallback; }
  std::string str() const;  // "batch=64 hidden=128 lr=0.01"
  bool operator==(const Params&) const = default;
  IOGRID_SERIALIZE(values)
};

// What a trial reports after each iteration: named figures ("accuracy", "loss", ...).
using Metrics = std::map<std::string, double>;

enum class TrialStatus : std::uint8_t {
  pending,  // not started
  running,  // on an actor now
  paused,   // stopped at a rung with a checkpoint, may be promoted to run further
  stopped,  // stopped early by the scheduler and never promoted
  done,     // ran every iteration
  failed,   // its actor or its code failed (the error is kept)
};
const char* to_string(TrialStatus s);

struct Trial {
  int id = 0;
  Params params;
  TrialStatus status = TrialStatus::pending;
  std::vector<Metrics> history;      // one entry per iteration completed
  double seconds = 0;                // trial-time: seconds spent in the trial's iterations
  int checkpoint_iteration = 0;      // iterations the newest checkpoint holds (0: none)
  std::string checkpoint_path;       // on disk, when the sweep has a folder
  std::string error;
  int failures = 0;

  int iterations() const { return int(history.size()); }
  // The metric after `iteration` iterations (1-based), or after the last when iteration is 0. NaN when absent.
  double metric(const std::string& name, int iteration = 0) const;
  IOGRID_SERIALIZE(id, params, status, history, seconds, checkpoint_iteration, checkpoint_path, error, failures)
};

// Which way is better. A NaN (a diverged trial) is worse than any number.
struct Objective {
  std::string metric = "accuracy";
  std::string mode = "max";  // or "min"
  bool better(double a, double b) const;  // a strictly better than b
  IOGRID_SERIALIZE(metric, mode)
};

}  // namespace iogrid::tune
