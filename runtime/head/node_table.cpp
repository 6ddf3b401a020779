#include "runtime/head/node_table.hpp"

#include <algorithm>
#include <sstream>

namespace iogrid::runtime::head {

bool NodeTable::name_taken(const std::string& name) const {
  for (const auto& n : state_.nodes())
    if (n.alive && n.name == name) return true;
  return false;
}

long NodeTable::find(const std::string& name) const {
  for (long i = long(state_.size()) - 1; i >= 0; --i)
    if (state_.node(std::uint32_t(i)).name == name) return i;
  return -1;
}

std::uint32_t NodeTable::add(sched::Node node, NodeRecord rec, Clock::time_point now) {
  const std::string base = node.name.empty() ? "node" : node.name;
  node.name = base;
  for (int k = 2; name_taken(node.name); ++k) node.name = base + "-" + std::to_string(k);
  node.alive = true;
  rec.last_heartbeat = rec.uptime_credited = now;
  const auto index = state_.add(std::move(node));
  records_.push_back(std::move(rec));
  return index;
}

void NodeTable::rejoin(std::uint32_t index, sched::Node node, NodeRecord rec, Clock::time_point now) {
  node.index = index;
  node.name = state_.node(index).name;
  node.alive = true;
  rec.last_heartbeat = rec.uptime_credited = now;
  state_.replace(index, std::move(node));
  records_.at(index) = std::move(rec);
}

void NodeTable::restore(sched::Node node, NodeRecord rec) {
  while (state_.size() < node.index) {  // indices never used (a node that never joined): dead gaps
    sched::Node gap;
    gap.alive = false;
    state_.add(std::move(gap));
    records_.emplace_back();
  }
  node.alive = false;
  node.available = {};
  state_.add(std::move(node));
  records_.push_back(std::move(rec));
}

bool NodeTable::mark_dead(std::uint32_t index) {
  if (!alive(index)) return false;
  auto dead = state_.node(index);
  dead.alive = false;
  dead.available = {};
  state_.replace(index, std::move(dead));
  records_[index].active_leases = 0;
  return true;
}

void NodeTable::heartbeat(std::uint32_t index, StoreFigures store, std::vector<gpu::Telemetry> telemetry,
                          Clock::time_point now) {
  auto& r = records_.at(index);
  r.last_heartbeat = now;
  r.store = store;
  r.telemetry = std::move(telemetry);
}

std::vector<Silent> NodeTable::silent(Clock::time_point now) {
  // The head did not look for a while (a long call, a busy machine): nobody could be heard meanwhile.
  if (last_check_ != Clock::time_point{} && now - last_check_ > 2 * kCheckPeriod) {
    const auto stall = (now - last_check_) - kCheckPeriod;
    for (auto& r : records_) r.last_heartbeat = std::min(now, r.last_heartbeat + stall);
  }
  last_check_ = now;
  std::vector<Silent> out;
  for (std::uint32_t i = 0; i < records_.size(); ++i) {
    if (records_[i].liveness != Liveness::heartbeats || !alive(i)) continue;
    auto quiet = std::chrono::duration_cast<std::chrono::milliseconds>(now - records_[i].last_heartbeat);
    if (quiet > timeout_ && heard_) {
      if (auto t = heard_(i); t && *t <= now && now - *t <= timeout_) {
        records_[i].last_heartbeat = *t;
        continue;
      }
    }
    if (quiet > timeout_) out.push_back(Silent{i, quiet});
  }
  return out;
}

std::vector<std::uint32_t> NodeTable::uptime_hours(Clock::time_point now) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = 0; i < records_.size(); ++i) {
    if (!alive(i) || now - records_[i].uptime_credited < std::chrono::hours(1)) continue;
    records_[i].uptime_credited += std::chrono::hours(1);
    out.push_back(i);
  }
  return out;
}

void NodeTable::set_verification(std::uint32_t index, std::uint32_t device, const std::string& line) {
  auto& text = records_.at(index).verification;
  std::string kept;
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("GPU " + std::to_string(device) + " ", 0) != 0) kept += l + "\n";
  text = kept + line;
}

}  // namespace iogrid::runtime::head
