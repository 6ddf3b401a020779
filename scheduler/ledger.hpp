// Ledger: who used which GPUs for how long, and what it cost, per job, reservation and provider node.
// Assumptions: the head reports each finished lease and each reservation (or a slice of one still running)
// with the node's price per GPU-hour at the time it was granted.
// Rules:
// - A lease outside any reservation charges its job and its node: GPU-seconds x price / 3600.
// - A reservation charges itself and its nodes for every reserved GPU for as long as it exists, used or not.
//   Jobs running inside it record their GPU-seconds at no extra cost (the reservation paid for them).
// - CPU-only work records no GPU-seconds and costs nothing (prices are per GPU-hour).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace iogrid::sched {

struct LedgerEntry {
  std::string kind;  // "job", "reservation" or "node"
  std::string name;
  double gpu_seconds = 0;
  double cost = 0;
};

class Ledger {
 public:
  // A lease of `gpus` GPUs held for `seconds` on `node` at `price` per GPU-hour; `reservation` empty: none.
  void lease(const std::string& job, const std::string& reservation, const std::string& node, double gpus,
             double seconds, double price);
  // A reservation held `gpus` GPUs on `node` for `seconds` at `price` per GPU-hour.
  void reserved(const std::string& reservation, const std::string& node, double gpus, double seconds, double price);

  std::vector<LedgerEntry> entries() const;  // jobs, then reservations, then nodes; by name
  LedgerEntry total(const std::string& kind, const std::string& name) const;

  // Text form for the head's state: one "kind,name,gpu_seconds,cost" line per entry.
  std::string save() const;
  static Ledger load(const std::string& text);  // throws std::invalid_argument on a malformed line

 private:
  void add(const std::string& kind, const std::string& name, double gpu_seconds, double cost);
  std::map<std::pair<std::string, std::string>, LedgerEntry> entries_;
};

}  // namespace iogrid::sched
