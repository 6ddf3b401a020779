// Ledger: who used which GPUs for how long, and what it cost, per job, reservation and provider node.
// Assumptions: the head reports each finished lease and each reservation (or a slice of one still running)
// with the node's price per GPU-hour at the time it was granted.
// Rules:
// - A lease outside any reservation charges its job and its node: GPU-seconds x price / 3600.
// - A reservation charges itself and its nodes for every reserved GPU for as long as it exists, used or not.
//   Jobs running inside it record their GPU-seconds at no extra cost (the reservation paid for them).
// - CPU-only work records no GPU-seconds and costs nothing (prices are per GPU-hour).
// - Double entry: every charge is split exactly, in whole micro-dollars, into the provider's earning and the
//   network's fee: fee = round(charge x fee_fraction), earning = charge - fee (split_charge). A node's total is
//   its earnings. The fee fraction is the head's `--network-fee` (default kDefaultNetworkFee: providers earn all).
// - Each charge is also kept as a record (take_charges) for the head's journal: one entry per lease and per
//   reservation slice, hash-chained and signed there (runtime/head/journal.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <string>
#include <vector>

namespace iogrid::sched {

inline constexpr double kDefaultNetworkFee = 0.0;  // the network's share of each charge, 0..1

// A charge split by the double-entry rule, in micro-dollars: charge == earning + fee exactly.
struct Split {
  std::int64_t charge = 0, earning = 0, fee = 0;
};
Split split_charge(double dollars, double fee_fraction);

// One charge as it happened: a lease ("lease") or a reservation's GPUs on one node ("reservation").
struct Charge {
  std::string kind, job, reservation, node;
  double gpus = 0, seconds = 0, price = 0;  // price per GPU-hour
  std::string tier = "standard";            // the request's tier (scheduler/pricing.hpp)
  Split split;                              // zero for a lease inside a reservation (the reservation pays)
};

struct LedgerEntry {
  std::string kind;  // "job", "reservation" or "node"
  std::string name;
  double gpu_seconds = 0;
  double cost = 0;
};

class Ledger {
 public:
  explicit Ledger(double fee_fraction = kDefaultNetworkFee) : fee_(fee_fraction) {}
  double fee_fraction() const { return fee_; }
  // The charges since the last call, oldest first (the head journals them).
  std::vector<Charge> take_charges() { return std::exchange(charges_, {}); }

  // A lease of `gpus` GPUs held for `seconds` on `node` at `price` per GPU-hour; `reservation` empty: none.
  void lease(const std::string& job, const std::string& reservation, const std::string& node, double gpus,
             double seconds, double price, const std::string& tier = "standard");
  // A reservation held `gpus` GPUs on `node` for `seconds` at `price` per GPU-hour.
  void reserved(const std::string& reservation, const std::string& node, double gpus, double seconds, double price);

  std::vector<LedgerEntry> entries() const;  // jobs, then reservations, then nodes; by name
  LedgerEntry total(const std::string& kind, const std::string& name) const;

  // Text form for the head's state: one "kind,name,gpu_seconds,cost" line per entry.
  std::string save() const;
  static Ledger load(const std::string& text, double fee_fraction = kDefaultNetworkFee);  // throws std::invalid_argument on a malformed line

 private:
  void add(const std::string& kind, const std::string& name, double gpu_seconds, double cost);
  std::map<std::pair<std::string, std::string>, LedgerEntry> entries_;
  double fee_ = kDefaultNetworkFee;
  std::vector<Charge> charges_;
};

}  // namespace iogrid::sched
