#include "scheduler/cluster_state.hpp"

#include <algorithm>
#include <sstream>

namespace iogrid::sched {

namespace {
template <class V, class K>
void insert_sorted(V& v, const K& k) {
  v.insert(std::lower_bound(v.begin(), v.end(), k), k);
}
template <class V, class K>
void erase_sorted(V& v, const K& k) {
  auto it = std::lower_bound(v.begin(), v.end(), k);
  if (it != v.end() && *it == k) v.erase(it);
}
}  // namespace

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

Milli ClusterState::gpu_key(const Node& n) {
  Milli whole = 0, partial = 0;
  for (const auto& g : n.gpus) {
    if (g.free >= kOne) ++whole;
    else partial = std::max(partial, g.free);
  }
  return whole * kOne + partial;
}

Milli ClusterState::fit_key(const Node& n) const {
  Milli gpu_free = 0;
  for (const auto& g : n.gpus) gpu_free += g.free;
  return n.available.cpus * std::max<Milli>(max_gpu_, 1) + gpu_free * std::max<Milli>(max_cpu_, 1);
}

void ClusterState::unindex(std::uint32_t i) {
  ++version_[i];
  if (class_of_[i] < 0) return;
  auto& c = classes_[static_cast<std::size_t>(class_of_[i])];
  erase_sorted(c.by_cpu, std::pair<Milli, std::uint32_t>{hot_[i].cpus, i});
  if (c.gpu) erase_sorted(c.by_gpu, std::pair<Milli, std::uint32_t>{hot_[i].gpu, i});
  erase_sorted(c.by_left, LeftEntry{hot_[i].left, i});
  class_of_[i] = -1;
}

void ClusterState::index(std::uint32_t i) {
  const auto& n = view_.nodes[i];
  ++version_[i];
  const Milli gpus = Milli(n.gpus.size()) * kOne;
  if (n.total.cpus > max_cpu_ || gpus > max_gpu_) {
    // A larger node changes the best-fit scale: every live node's key is recomputed.
    max_cpu_ = std::max(max_cpu_, n.total.cpus);
    max_gpu_ = std::max(max_gpu_, gpus);
    for (auto& c : classes_) {
      for (auto& e : c.by_left) e.left = hot_[e.node].left = fit_key(view_.nodes[e.node]);
      std::sort(c.by_left.begin(), c.by_left.end());
    }
  }
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
  class_of_[i] = static_cast<std::int32_t>(it->second);
  file(i);
}

void ClusterState::file(std::uint32_t i) {
  const auto& n = view_.nodes[i];
  auto& c = classes_[static_cast<std::size_t>(class_of_[i])];
  hot_[i] = Hot{n.available.cpus, c.gpu ? gpu_key(n) : 0, n.available.memory_mib, fit_key(n)};
  insert_sorted(c.by_cpu, std::pair<Milli, std::uint32_t>{hot_[i].cpus, i});
  if (c.gpu) insert_sorted(c.by_gpu, std::pair<Milli, std::uint32_t>{hot_[i].gpu, i});
  insert_sorted(c.by_left, LeftEntry{hot_[i].left, i, hot_[i].cpus, hot_[i].gpu, hot_[i].memory});
}

void ClusterState::refile(std::uint32_t i) {
  ++version_[i];
  if (class_of_[i] < 0) return;  // dead: in no class
  auto& c = classes_[static_cast<std::size_t>(class_of_[i])];
  const auto& n = view_.nodes[i];
  const Milli cpus = n.available.cpus, gpu = c.gpu ? gpu_key(n) : 0, left = fit_key(n);
  if (cpus == hot_[i].cpus && gpu == hot_[i].gpu && left == hot_[i].left) {
    hot_[i].memory = n.available.memory_mib;
    auto it = std::lower_bound(c.by_left.begin(), c.by_left.end(), LeftEntry{left, i});
    if (it != c.by_left.end() && it->node == i) it->memory = hot_[i].memory;
    return;
  }
  erase_sorted(c.by_cpu, std::pair<Milli, std::uint32_t>{hot_[i].cpus, i});
  if (c.gpu) erase_sorted(c.by_gpu, std::pair<Milli, std::uint32_t>{hot_[i].gpu, i});
  erase_sorted(c.by_left, LeftEntry{hot_[i].left, i});
  file(i);
}

std::uint32_t ClusterState::add(Node n) {
  auto i = static_cast<std::uint32_t>(view_.nodes.size());
  n.index = i;
  if (!n.name.empty()) by_name_[n.name] = i;
  view_.nodes.push_back(std::move(n));
  class_of_.push_back(-1);
  hot_.emplace_back();
  held_for_.push_back(0);
  version_.push_back(0);
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

void ClusterState::set_reputation(std::uint32_t i, double reputation) {
  view_.nodes[i].reputation = reputation;
  ++version_[i];
}

void ClusterState::set_posted_price(std::uint32_t i, double price) {
  if (view_.nodes[i].posted_price == price) return;
  view_.nodes[i].posted_price = price;
  ++version_[i];
}

std::optional<Allocation> ClusterState::allocate(std::uint32_t i, const ResourceRequest& req,
                                                 std::optional<std::uint32_t> device) {
  auto a = sched::allocate(view_.nodes[i], req, device);
  if (a) refile(i);
  return a;
}

void ClusterState::release(const Allocation& a) {
  if (a.node >= view_.nodes.size()) return;
  sched::release(view_.nodes[a.node], a);
  refile(a.node);
}

bool ClusterState::reserve(const Allocation& a) {
  if (a.node >= view_.nodes.size()) return false;
  bool ok = sched::reserve(view_.nodes[a.node], a);
  if (ok) refile(a.node);
  return ok;
}

void ClusterState::adjust_cpus(std::uint32_t i, Milli delta) {
  view_.nodes[i].available.cpus += delta;
  refile(i);
}

void ClusterState::clear_holds() { std::fill(held_for_.begin(), held_for_.end(), 0); }

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
    if (c.by_cpu.empty() || !fits_resources(view_.nodes[c.representative], req, Capacity::total)) continue;
    for (const auto& [free, i] : c.by_cpu)
      if (market_ok(view_.nodes[i], req, Capacity::total)) return true;
  }
  return false;
}

bool ClusterState::fits_now(const Node& n, const ResourceRequest& req, const std::vector<char>& match) {
  if (n.available.cpus < req.cpus || n.available.memory_mib < req.memory_mib || !market_ok(n, req)) return false;
  for (const auto& [k, v] : req.custom) {
    auto it = n.available.custom.find(k);
    if (v > 0 && (it == n.available.custom.end() || it->second < v)) return false;
  }
  if (req.gpus <= 0) return true;
  Milli whole = 0;
  for (std::size_t d = 0; d < n.gpus.size(); ++d) {
    if (!match[d]) continue;
    if (req.gpus < kOne && n.gpus[d].free >= req.gpus) return true;
    if (n.gpus[d].free >= kOne) whole += kOne;
  }
  return req.gpus >= kOne && whole >= req.gpus;
}

std::optional<std::uint32_t> ClusterState::best_fit(const ResourceRequest& req) const {
  if (!req.node.empty()) {
    auto i = find(req.node);
    if (i && usable(view_.nodes[*i]) && fits(view_.nodes[*i], req, Capacity::available)) return i;
    return std::nullopt;
  }
  // No node with a key below the request's own can hold it.
  const Milli gpu_need = req.gpus >= kOne ? req.gpus : std::max<Milli>(req.gpus, 0);
  const Milli bound = req.cpus * std::max<Milli>(max_gpu_, 1) + gpu_need * std::max<Milli>(max_cpu_, 1);
  std::optional<std::pair<Milli, std::uint32_t>> best;
  auto& match = match_scratch_;
  for (const auto& c : classes_) {
    if (c.by_left.empty()) continue;
    // No node of the class has the free CPUs or the GPU room: skip it without walking.
    if (c.by_cpu.back().first < req.cpus || (req.gpus > 0 && (!c.gpu || c.by_gpu.back().first < req.gpus))) continue;
    const auto& rep = view_.nodes[c.representative];
    if (!fits_resources(rep, req, Capacity::total)) continue;
    match.assign(rep.gpus.size(), 0);
    for (std::size_t d = 0; d < rep.gpus.size(); ++d) match[d] = gpu_matches(rep.gpus[d], req) ? 1 : 0;
    for (auto it = std::lower_bound(c.by_left.begin(), c.by_left.end(), LeftEntry{bound, 0}); it != c.by_left.end(); ++it) {
      if (best && std::pair<Milli, std::uint32_t>{it->left, it->node} > *best) break;  // nothing later can win
      if (it->cpus < req.cpus || it->memory < req.memory_mib || it->gpu < req.gpus) continue;
      const auto i = it->node;
      if ((held_for_[i] != 0 && held_for_[i] != serving_) || !fits_now(view_.nodes[i], req, match)) continue;
      best = std::pair<Milli, std::uint32_t>{it->left, i};
      break;
    }
  }
  if (!best) return std::nullopt;
  return best->second;
}

void ClusterState::candidates(const ResourceRequest& req, Order order, std::size_t per_class,
                              const Visitor& visit) const {
  if (!req.node.empty()) {
    auto i = find(req.node);
    if (i && usable(view_.nodes[*i]) && fits(view_.nodes[*i], req, Capacity::available)) visit(view_.nodes[*i]);
    return;
  }
  auto& match = match_scratch_;
  for (const auto& c : classes_) {
    if (c.by_cpu.empty()) continue;
    const auto& rep = view_.nodes[c.representative];
    if (!fits_resources(rep, req, Capacity::total)) continue;
    match.assign(rep.gpus.size(), 0);
    for (std::size_t d = 0; d < rep.gpus.size(); ++d) match[d] = gpu_matches(rep.gpus[d], req) ? 1 : 0;
    const bool by_gpu = c.gpu && req.gpus > 0;
    const auto& ord = by_gpu ? c.by_gpu : c.by_cpu;
    const Milli bound = by_gpu ? req.gpus : req.cpus;
    std::size_t seen = 0;
    auto consider = [&](std::uint32_t i) {
      const auto& h = hot_[i];
      if (h.cpus < req.cpus || h.memory < req.memory_mib || (held_for_[i] != 0 && held_for_[i] != serving_)) return true;
      const auto& n = view_.nodes[i];
      if (!fits_now(n, req, match)) return true;
      ++seen;
      return visit(n) && seen < per_class;
    };
    auto first = std::lower_bound(ord.begin(), ord.end(), std::pair<Milli, std::uint32_t>{bound, 0});
    if (order == Order::tightest) {
      for (auto it = first; it != ord.end(); ++it)
        if (!consider(it->second)) break;
    } else {
      for (auto it = ord.end(); it != first;) {
        --it;
        if (!consider(it->second)) break;
      }
    }
  }
}

}  // namespace iogrid::sched
