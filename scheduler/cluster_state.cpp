#include "scheduler/cluster_state.hpp"

#include <sstream>

namespace iogrid::sched {

ClusterState::ClusterState(ClusterView view) {
  for (auto& n : view.nodes) add(std::move(n));
}

std::string ClusterState::class_key(const Node& n) {
  std::ostringstream os;
  os << n.total.cpus << '/' << n.total.memory_mib << '/';
  for (const auto& [k, v] : n.total.custom) os << k << '=' << v << ',';
  os << '/';
  for (const auto& g : n.gpus)
    os << g.model << ':' << g.memory_mib << ':' << g.compute_capability << ':' << g.verified << ':' << g.tflops << ',';
  os << '/';
  for (const auto& [k, v] : n.labels) os << k << '=' << v << ',';
  return os.str();
}

Milli ClusterState::scarce_free(const Node& n, const Class& c) const {
  if (!c.gpu) return n.available.cpus;
  Milli f = 0;
  for (const auto& g : n.gpus) f += g.free;
  return f;
}

void ClusterState::unindex(std::uint32_t i) {
  if (class_of_[i] < 0) return;
  classes_[static_cast<std::size_t>(class_of_[i])].by_free.erase({indexed_free_[i], i});
  class_of_[i] = -1;
}

void ClusterState::index(std::uint32_t i) {
  const auto& n = view_.nodes[i];
  if (!n.alive) return;
  auto key = class_key(n);
  auto it = class_by_key_.find(key);
  if (it == class_by_key_.end()) {
    Class c;
    c.representative = i;
    c.gpu = !n.gpus.empty();
    classes_.push_back(std::move(c));
    it = class_by_key_.emplace(std::move(key), static_cast<std::uint32_t>(classes_.size() - 1)).first;
  }
  auto& c = classes_[it->second];
  class_of_[i] = static_cast<std::int32_t>(it->second);
  indexed_free_[i] = scarce_free(n, c);
  c.by_free.emplace(indexed_free_[i], i);
}

std::uint32_t ClusterState::add(Node n) {
  auto i = static_cast<std::uint32_t>(view_.nodes.size());
  n.index = i;
  if (!n.name.empty()) by_name_[n.name] = i;
  view_.nodes.push_back(std::move(n));
  class_of_.push_back(-1);
  indexed_free_.push_back(0);
  index(i);
  return i;
}

void ClusterState::replace(std::uint32_t i, Node n) {
  unindex(i);
  if (!view_.nodes[i].name.empty()) by_name_.erase(view_.nodes[i].name);
  n.index = i;
  if (!n.name.empty()) by_name_[n.name] = i;
  view_.nodes[i] = std::move(n);
  index(i);
}

void ClusterState::set_alive(std::uint32_t i, bool alive) {
  unindex(i);
  view_.nodes[i].alive = alive;
  index(i);
}

void ClusterState::set_reputation(std::uint32_t i, double reputation) { view_.nodes[i].reputation = reputation; }

std::optional<Allocation> ClusterState::allocate(std::uint32_t i, const ResourceRequest& req) {
  unindex(i);
  auto a = sched::allocate(view_.nodes[i], req);
  index(i);
  return a;
}

void ClusterState::release(const Allocation& a) {
  if (a.node >= view_.nodes.size()) return;
  unindex(a.node);
  sched::release(view_.nodes[a.node], a);
  index(a.node);
}

bool ClusterState::reserve(const Allocation& a) {
  if (a.node >= view_.nodes.size()) return false;
  unindex(a.node);
  bool ok = sched::reserve(view_.nodes[a.node], a);
  index(a.node);
  return ok;
}

void ClusterState::adjust_cpus(std::uint32_t i, Milli delta) {
  unindex(i);
  view_.nodes[i].available.cpus += delta;
  index(i);
}

std::optional<std::uint32_t> ClusterState::find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

bool ClusterState::feasible(const ResourceRequest& req) const {
  if (!req.node.empty()) {
    auto i = find(req.node);
    return i && fits(view_.nodes[*i], req, Capacity::total);
  }
  for (const auto& c : classes_) {
    if (c.by_free.empty() || !fits_resources(view_.nodes[c.representative], req, Capacity::total)) continue;
    for (const auto& [free, i] : c.by_free)
      if (market_ok(view_.nodes[i], req)) return true;
  }
  return false;
}

void ClusterState::candidates(const ResourceRequest& req, Order order, std::size_t per_class,
                              const Visitor& visit) const {
  if (!req.node.empty()) {
    auto i = find(req.node);
    if (i && fits(view_.nodes[*i], req, Capacity::available)) visit(view_.nodes[*i]);
    return;
  }
  for (const auto& c : classes_) {
    if (c.by_free.empty() || !fits_resources(view_.nodes[c.representative], req, Capacity::total)) continue;
    const Milli need = c.gpu ? req.gpus : req.cpus;
    std::size_t seen = 0;
    auto consider = [&](std::uint32_t i) {
      const auto& n = view_.nodes[i];
      if (!fits(n, req, Capacity::available)) return true;
      ++seen;
      return visit(n) && seen < per_class;
    };
    auto first = c.by_free.lower_bound({need, 0});
    if (order == Order::tightest) {
      for (auto it = first; it != c.by_free.end(); ++it)
        if (!consider(it->second)) break;
    } else {
      for (auto it = c.by_free.end(); it != first;) {
        --it;
        if (!consider(it->second)) break;
      }
    }
  }
}

}  // namespace iogrid::sched
