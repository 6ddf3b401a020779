// The runtime's own copy of what a task or an actor asks for. The SDK converts its public TaskOptions and
// ActorOptions into these at its boundary (sdk/src/options.cpp), so the public structs can change shape
// without the runtime following, and nothing below the SDK includes a public header.
// Values are as the user gave them; the runtime checks them (runtime/task_submitter.cpp: to_request) and
// its errors name the public option ("option num_gpus must be ...").
#pragma once

#include <map>
#include <string>
#include <vector>

namespace iogrid::core {

// Where work may run and what it holds while it runs.
struct Requirements {
  double cpus = 1;
  double gpus = 0;                     // whole GPUs, or a fraction of one
  std::string gpu_model;               // '|'-separated; empty: any
  double min_gpu_memory_gib = 0;
  double min_compute_capability = 0;
  double memory_gib = 0;
  std::map<std::string, double> resources;
  std::map<std::string, std::string> labels;
  std::string node;
  std::string cluster;                 // a reservation id ("c-7"); empty: the process default
  int bundle = -1;
  double max_price = 0;
  std::vector<std::string> preferred_regions;
  double min_reputation = 0;
  double min_gpu_tflops = 0;
  bool allow_unverified_gpus = false;
  int priority = 0;
  std::string tier;                    // "spot", "standard" (empty) or "urgent"
};

struct TaskOptions {
  Requirements needs;
  int max_retries = 3;
  bool retry_exceptions = false;
  double verify_fraction = -1;         // share of runs checked on another provider; -1: the process's default
  double verify_tolerance = 0;         // 0: results compare bitwise; else the relative tolerance for floating point
};

struct ActorOptions {
  Requirements needs{.cpus = 0};
  int max_restarts = 0;                // -1: unlimited
  int max_task_retries = 0;            // a call cut off by a restart runs again on the next incarnation; -1: unlimited
};

}  // namespace iogrid::core
