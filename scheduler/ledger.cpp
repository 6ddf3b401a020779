#include "scheduler/ledger.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace iogrid::sched {

namespace {
int rank(const std::string& kind) { return kind == "job" ? 0 : kind == "reservation" ? 1 : 2; }
}  // namespace

void Ledger::add(const std::string& kind, const std::string& name, double gpu_seconds, double cost) {
  auto& e = entries_[{kind, name}];
  e.kind = kind;
  e.name = name;
  e.gpu_seconds += gpu_seconds;
  e.cost += cost;
}

Split split_charge(double dollars, double fee_fraction) {
  Split s;
  s.charge = std::llround(std::max(0.0, dollars) * 1e6);
  s.fee = std::llround(static_cast<double>(s.charge) * std::clamp(fee_fraction, 0.0, 1.0));
  s.earning = s.charge - s.fee;
  return s;
}

void Ledger::lease(const std::string& job, const std::string& reservation, const std::string& node, double gpus,
                   double seconds, double price, const std::string& tier) {
  if (gpus <= 0 || seconds <= 0) return;
  const double gs = gpus * seconds;
  if (!reservation.empty()) {
    add("job", job, gs, 0);  // paid by the reservation
    charges_.push_back({"lease", job, reservation, node, gpus, seconds, price, tier, {}});
    return;
  }
  const double cost = gs * price / 3600.0;
  const auto split = split_charge(cost, fee_);
  add("job", job, gs, cost);
  add("node", node, gs, cost - static_cast<double>(split.fee) / 1e6);  // its earning (the fee goes to the network)
  charges_.push_back({"lease", job, "", node, gpus, seconds, price, tier, split});
}

void Ledger::reserved(const std::string& reservation, const std::string& node, double gpus, double seconds,
                      double price) {
  if (gpus <= 0 || seconds <= 0) return;
  const double gs = gpus * seconds, cost = gs * price / 3600.0;
  const auto split = split_charge(cost, fee_);
  add("reservation", reservation, gs, cost);
  add("node", node, gs, cost - static_cast<double>(split.fee) / 1e6);  // its earning (the fee goes to the network)
  charges_.push_back({"reservation", "", reservation, node, gpus, seconds, price, "standard", split});
}

std::vector<LedgerEntry> Ledger::entries() const {
  std::vector<LedgerEntry> out;
  for (const auto& [k, e] : entries_) out.push_back(e);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return rank(a.kind) < rank(b.kind); });
  return out;
}

LedgerEntry Ledger::total(const std::string& kind, const std::string& name) const {
  auto it = entries_.find({kind, name});
  return it == entries_.end() ? LedgerEntry{kind, name, 0, 0} : it->second;
}

std::string Ledger::save() const {
  std::ostringstream os;
  os.precision(17);
  for (const auto& [k, e] : entries_) os << e.kind << ',' << e.name << ',' << e.gpu_seconds << ',' << e.cost << '\n';
  return os.str();
}

Ledger Ledger::load(const std::string& text, double fee_fraction) {
  Ledger l(fee_fraction);
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    auto a = line.find(','), b = line.find(',', a + 1), c = line.find(',', b + 1);
    if (a == std::string::npos || b == std::string::npos || c == std::string::npos)
      throw std::invalid_argument("ledger line " + std::to_string(n) + ": expected kind,name,gpu_seconds,cost");
    try {
      l.add(line.substr(0, a), line.substr(a + 1, b - a - 1), std::stod(line.substr(b + 1, c - b - 1)),
            std::stod(line.substr(c + 1)));
    } catch (const std::logic_error&) {
      throw std::invalid_argument("ledger line " + std::to_string(n) + ": bad number");
    }
  }
  return l;
}

}  // namespace iogrid::sched
