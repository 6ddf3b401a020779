#include "runtime/head/lease_book.hpp"

#include "runtime/head/reservations.hpp"

namespace iogrid::runtime::head {

std::optional<PendingLease> LeaseBook::take_pending(std::uint64_t ticket) {
  auto it = pending_.find(ticket);
  if (it == pending_.end()) return std::nullopt;
  auto p = std::move(it->second);
  pending_.erase(it);
  return p;
}

std::vector<PendingLease> LeaseBook::drop_pending(const std::function<bool(const PendingLease&)>& pred) {
  std::vector<PendingLease> out;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (pred(it->second)) {
      sched_.cancel(it->first);
      out.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

LeaseRecord* LeaseBook::find(std::uint64_t id) {
  auto it = running_.find(id);
  return it == running_.end() ? nullptr : &it->second;
}

void LeaseBook::charge(const LeaseRecord& l, Clock::time_point now) {
  if (l.alloc.node >= sched_.cluster().size() || l.alloc.gpus.empty()) return;
  const double secs = std::chrono::duration<double>(now - l.start).count();
  ledger_.lease(l.job, l.reservation ? reservation_name(l.reservation) : "", sched_.cluster().node(l.alloc.node).name,
                sched::gpu_count(l.alloc), secs, l.price, l.tier);
  ledger_changed_ = true;
}

void LeaseBook::credit(std::uint32_t node, sched::Outcome o) {
  auto& state = sched_.cluster();
  if (node >= state.size()) return;
  state.set_reputation(node, sched::update_reputation(state.node(node).reputation, o));
}

std::optional<LeaseRecord> LeaseBook::finish_on_dead_node(std::uint64_t id, Clock::time_point now) {
  auto it = running_.find(id);
  if (it == running_.end()) return std::nullopt;
  auto l = std::move(it->second);
  running_.erase(it);
  charge(l, now);
  return l;
}

std::optional<LeaseRecord> LeaseBook::finish(std::uint64_t id, Clock::time_point now) {
  auto l = finish_on_dead_node(id, now);
  if (l) {
    credit(l->alloc.node, sched::Outcome::task_succeeded);
    sched_.release(l->job, l->alloc);
  }
  return l;
}

std::vector<LeaseRecord> LeaseBook::lose_node(std::uint32_t node, Clock::time_point now) {
  std::vector<LeaseRecord> lost;
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second.alloc.node != node) {
      ++it;
      continue;
    }
    charge(it->second, now);
    credit(node, sched::Outcome::task_failed);
    sched_.forget(it->second.job, it->second.alloc);
    lost.push_back(std::move(it->second));
    it = running_.erase(it);
  }
  return lost;
}

bool LeaseBook::lend_cpus(std::uint64_t id) {
  auto* l = find(id);
  auto& state = sched_.cluster();
  if (!l || l->alloc.node >= state.size() || !state.node(l->alloc.node).alive) return false;
  state.adjust_cpus(l->alloc.node, l->alloc.cpus);
  return true;
}

bool LeaseBook::reclaim_cpus(std::uint64_t id) {
  auto* l = find(id);
  auto& state = sched_.cluster();
  if (!l || l->alloc.node >= state.size() || !state.node(l->alloc.node).alive) return false;
  state.adjust_cpus(l->alloc.node, -l->alloc.cpus);
  return true;
}

void LeaseBook::forget_owner(OwnerId owner) {
  for (auto& [id, l] : running_)
    if (l.owner == owner) l.owner = 0;
}

void LeaseBook::reassign(const std::string& job, OwnerId owner) {
  for (auto& [id, l] : running_)
    if (l.job == job) l.owner = owner;
}

}  // namespace iogrid::runtime::head
