#include "scheduler/placement_group.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "scheduler/feasibility.hpp"

namespace iogrid::sched {

GangStrategy parse_strategy(const std::string& name) {
  if (name == "pack") return GangStrategy::pack;
  if (name == "spread") return GangStrategy::spread;
  if (name == "strict-pack") return GangStrategy::strict_pack;
  if (name == "strict-spread") return GangStrategy::strict_spread;
  throw std::invalid_argument("unknown gang strategy '" + name + "' (choose pack, spread, strict-pack or strict-spread)");
}

const char* to_string(GangStrategy s) {
  switch (s) {
    case GangStrategy::pack: return "pack";
    case GangStrategy::spread: return "spread";
    case GangStrategy::strict_pack: return "strict-pack";
    case GangStrategy::strict_spread: return "strict-spread";
  }
  return "?";
}

std::string GangRequest::describe() const {
  std::string s = std::to_string(bundles.size()) + " bundles, " + to_string(strategy);
  if (same_region) s += ", same region";
  s += ": ";
  for (std::size_t i = 0; i < bundles.size(); ++i) s += (i ? " " : "") + bundles[i].describe();
  return s;
}

namespace {

// All bundles summed into one request: the filter for nodes that could hold the whole gang (strict-pack).
// Fractions are rounded up to whole GPUs once the total passes one GPU (conservative).
ResourceRequest combined(const std::vector<ResourceRequest>& bundles) {
  ResourceRequest c = bundles.front();
  c.cpus = c.memory_mib = 0;
  c.custom.clear();
  Milli whole = 0, frac = 0;
  for (const auto& b : bundles) {
    c.cpus += b.cpus;
    c.memory_mib += b.memory_mib;
    for (const auto& [k, v] : b.custom) c.custom[k] += v;
    if (b.gpus >= kOne) whole += b.gpus;
    else frac += b.gpus;
  }
  if (whole == 0 && frac <= kOne) c.gpus = frac;
  else c.gpus = whole + (frac + kOne - 1) / kOne * kOne;
  return c;
}

class Attempt {
 public:
  explicit Attempt(ClusterState& s) : s_(s) {}
  ~Attempt() {
    if (!committed_) rollback();
  }
  void rollback() {
    for (auto it = taken_.rbegin(); it != taken_.rend(); ++it) s_.release(*it);
    taken_.clear();
    uses_.clear();
  }
  bool take(std::uint32_t node, const ResourceRequest& req) {
    auto a = s_.allocate(node, req);
    if (!a) return false;
    taken_.push_back(*a);
    ++uses_[node];
    return true;
  }
  std::vector<Allocation> commit() {
    committed_ = true;
    return taken_;
  }
  int uses(std::uint32_t node) const {
    auto it = uses_.find(node);
    return it == uses_.end() ? 0 : it->second;
  }
  const std::map<std::uint32_t, int>& used() const { return uses_; }

 private:
  ClusterState& s_;
  std::vector<Allocation> taken_;
  std::map<std::uint32_t, int> uses_;
  bool committed_ = false;
};

// The best-fitting node for `req` that `allowed` accepts (pack's rule).
std::optional<std::uint32_t> best_fit(const ClusterState& s, const ResourceRequest& req, std::size_t skip,
                                      const std::function<bool(std::uint32_t)>& allowed) {
  std::optional<std::uint32_t> best;
  double best_u = -1;
  s.candidates(req, ClusterState::Order::tightest, kCandidatesPerClass + skip, [&](const Node& n) {
    if (!allowed(n.index)) return true;
    double u = utilization_after(n, req);
    if (!best || u > best_u + 1e-12 || (u > best_u - 1e-12 && n.index < *best)) {
      best = n.index;
      best_u = u;
    }
    return true;
  });
  return best;
}

std::optional<std::vector<Allocation>> place_in(ClusterState& s, const GangRequest& g,
                                                const std::vector<ResourceRequest>& bundles) {
  Attempt at(s);
  const auto any = [](std::uint32_t) { return true; };
  auto strict_pack = [&]() -> bool {
    auto filter = combined(bundles);
    bool done = false;
    s.candidates(filter, ClusterState::Order::tightest, kCandidatesPerClass, [&](const Node& n) {
      if (done) return false;  // (the visit goes on with the next class)
      for (const auto& b : bundles)
        if (!at.take(n.index, b)) {
          at.rollback();  // this node cannot hold them all (device fractions): the next one
          return true;
        }
      done = true;
      return false;
    });
    return done;
  };
  switch (g.strategy) {
    case GangStrategy::strict_pack:
      if (!strict_pack()) return std::nullopt;
      break;
    case GangStrategy::pack:
      if (!strict_pack()) {
        for (const auto& b : bundles) {
          bool placed = false;
          for (const auto& [node, count] : at.used())  // nodes the gang already uses first
            if ((placed = at.take(node, b))) break;
          if (placed) continue;
          auto n = best_fit(s, b, 0, any);
          if (!n || !at.take(*n, b)) return std::nullopt;
        }
      }
      break;
    case GangStrategy::strict_spread:
      for (const auto& b : bundles) {
        auto n = best_fit(s, b, at.used().size(), [&](std::uint32_t i) { return at.uses(i) == 0; });
        if (!n || !at.take(*n, b)) return std::nullopt;
      }
      break;
    case GangStrategy::spread:
      for (const auto& b : bundles) {
        auto n = best_fit(s, b, at.used().size(), [&](std::uint32_t i) { return at.uses(i) == 0; });
        if (!n) {  // every fitting node is used already: the one used least
          std::optional<std::uint32_t> least;
          s.candidates(b, ClusterState::Order::loosest, kCandidatesPerClass + at.used().size(), [&](const Node& nd) {
            if (!least || at.uses(nd.index) < at.uses(*least)) least = nd.index;
            return true;
          });
          n = least;
        }
        if (!n || !at.take(*n, b)) return std::nullopt;
      }
      break;
  }
  return at.commit();
}

// Regions in the order the header states.
std::vector<std::string> region_order(const ClusterState& s, const GangRequest& g) {
  std::map<std::string, Milli> free;
  const bool gpu = std::any_of(g.bundles.begin(), g.bundles.end(), [](const auto& b) { return b.gpus > 0; });
  for (const auto& n : s.nodes()) {
    if (!n.alive) continue;
    Milli f = 0;
    if (gpu)
      for (const auto& d : n.gpus) f += d.free;
    else
      f = n.available.cpus;
    free[n.region()] += f;
  }
  std::vector<std::string> out;
  for (const auto& r : g.bundles.front().preferred_regions)
    if (free.count(r)) out.push_back(r);
  std::vector<std::pair<Milli, std::string>> rest;
  for (const auto& [r, f] : free)
    if (std::find(out.begin(), out.end(), r) == out.end()) rest.emplace_back(-f, r);
  std::sort(rest.begin(), rest.end());
  for (auto& [f, r] : rest) out.push_back(r);
  return out;
}

std::vector<ResourceRequest> in_region(const std::vector<ResourceRequest>& bundles, const std::string& region) {
  auto out = bundles;
  for (auto& b : out) b.labels[kRegionLabel] = region;
  return out;
}

}  // namespace

std::optional<GangPlacement> place_gang(ClusterState& state, const GangRequest& gang) {
  if (gang.bundles.empty()) return GangPlacement{};
  if (!gang.same_region) {
    auto a = place_in(state, gang, gang.bundles);
    if (!a) return std::nullopt;
    return GangPlacement{std::move(*a), {}};
  }
  for (const auto& r : region_order(state, gang)) {
    if (auto a = place_in(state, gang, in_region(gang.bundles, r))) return GangPlacement{std::move(*a), r};
  }
  return std::nullopt;
}

void release_gang(ClusterState& state, const GangPlacement& p) {
  for (const auto& a : p.bundles) state.release(a);
}

namespace {
// Places the gang on a copy of the state with every live node empty.
bool fits_empty(const ClusterState& state, const GangRequest& gang) {
  ClusterView empty = state.view();
  for (auto& n : empty.nodes) {
    n.available = n.total;
    for (auto& g : n.gpus) g.free = kOne;
  }
  ClusterState s(std::move(empty));
  return place_gang(s, gang).has_value();
}
}  // namespace

bool gang_feasible(const ClusterState& state, const GangRequest& gang, std::string* why) {
  for (const auto& b : gang.bundles) {
    if (!state.feasible(b)) {
      if (why) *why = explain_infeasible(state.view(), b);
      return false;
    }
  }
  if (fits_empty(state, gang)) return true;
  if (why) {
    *why = "no set of nodes can ever hold the gang (" + gang.describe() + ")";
    if (gang.strategy == GangStrategy::strict_pack) {
      auto c = combined(gang.bundles);
      *why += "; strict-pack needs one node with " + c.describe() + ": " + explain_infeasible(state.view(), c);
    } else if (gang.strategy == GangStrategy::strict_spread) {
      std::size_t fitting = 0;
      for (const auto& n : state.nodes()) fitting += fits(n, gang.bundles.front(), Capacity::total) ? 1 : 0;
      *why += "; strict-spread needs " + std::to_string(gang.bundles.size()) + " different nodes, " +
              std::to_string(fitting) + " can hold a bundle";
    } else if (gang.same_region) {
      *why += "; no single region has room for all bundles";
    }
  }
  return false;
}

namespace {

std::string money(double v) {
  std::ostringstream os;
  os.precision(3);
  os << v;
  return os.str();
}

// What a placement offers: "4 x A100 on 2 nodes in eu, 1.9/GPU-h on average, reputation >= 0.8".
std::string offer(const ClusterState& s, const GangPlacement& p) {
  std::map<std::string, int> models;
  std::set<std::uint32_t> nodes;
  double price = 0, gpus = 0, rep = 1;
  for (const auto& a : p.bundles) {
    const auto& n = s.node(a.node);
    nodes.insert(a.node);
    rep = std::min(rep, n.reputation);
    for (const auto& [d, f] : a.gpus) {
      models[n.gpus[d].model] += 1;
      price += n.price_per_gpu_hour * double(f) / double(kOne);
      gpus += double(f) / double(kOne);
    }
  }
  std::string m;
  for (const auto& [model, c] : models) m += (m.empty() ? "" : " + ") + std::to_string(c) + " x " + model;
  if (m.empty()) m = "no GPUs";
  std::string out = m + " on " + std::to_string(nodes.size()) + " node(s)";
  if (!p.region.empty()) out += " in " + p.region;
  if (gpus > 0) out += ", " + money(price / gpus) + "/GPU-h on average";
  out += ", reputation >= " + money(rep);
  return out;
}

}  // namespace

std::string explain_unplaced(const ClusterState& state, const GangRequest& gang) {
  std::string why;
  if (!gang_feasible(state, gang, &why)) return why;
  auto try_with = [&](const std::function<void(GangRequest&)>& relax) -> std::optional<std::string> {
    GangRequest g = gang;
    relax(g);
    ClusterState copy = state;
    if (auto p = place_gang(copy, g)) return offer(copy, *p);
    return std::nullopt;
  };
  const auto& b = gang.bundles.front();
  if (b.max_price > 0)
    if (auto o = try_with([](GangRequest& g) { for (auto& x : g.bundles) x.max_price = 0; }))
      return "the price ceiling " + money(b.max_price) + "/GPU-h cannot be met now; closest offer: " + *o;
  if (b.min_reputation > 0)
    if (auto o = try_with([](GangRequest& g) { for (auto& x : g.bundles) x.min_reputation = 0; }))
      return "the reputation floor " + money(b.min_reputation) + " cannot be met now; closest offer: " + *o;
  if (b.labels.count(kRegionLabel) || gang.same_region)
    if (auto o = try_with([](GangRequest& g) {
          g.same_region = false;
          for (auto& x : g.bundles) x.labels.erase(kRegionLabel);
        }))
      return "not enough free GPUs in " +
             (b.labels.count(kRegionLabel) ? "region " + b.labels.at(kRegionLabel) : std::string("any one region")) +
             " now; closest offer: " + *o;
  if (!b.gpu_models.empty())
    if (auto o = try_with([](GangRequest& g) { for (auto& x : g.bundles) x.gpu_models.clear(); }))
      return "not enough free GPUs of the accepted models now; closest offer: " + *o;
  for (std::size_t k = gang.bundles.size() - 1; k > 0; --k) {
    if (auto o = try_with([k](GangRequest& g) { g.bundles.resize(k); }))
      return "only " + std::to_string(k) + " of the " + std::to_string(gang.bundles.size()) +
             " bundles fit now; closest offer: " + *o;
  }
  return "nothing that matches is free now (" + gang.describe() + ")";
}

BundlePool::BundlePool(const Allocation& reserved, const Node& node) : reserved_(reserved) {
  pool_.index = reserved.node;
  pool_.name = node.name;
  pool_.labels = node.labels;
  pool_.total.cpus = reserved.cpus;
  pool_.total.memory_mib = reserved.memory_mib;
  pool_.total.custom = reserved.custom;
  for (const auto& [d, f] : reserved.gpus) {
    Gpu g = d < node.gpus.size() ? node.gpus[d] : Gpu{};
    g.free = f;
    pool_.gpus.push_back(g);
  }
  pool_.available = pool_.total;
}

namespace {
ResourceRequest plain(const ResourceRequest& req) {
  ResourceRequest r = req;
  r.node.clear();
  r.max_price = r.min_reputation = 0;
  return r;
}
}  // namespace

bool BundlePool::fits_ever(const ResourceRequest& req) const {
  Node full = pool_;
  full.available = full.total;
  for (std::size_t i = 0; i < full.gpus.size(); ++i) full.gpus[i].free = reserved_.gpus[i].second;
  return fits(full, plain(req), Capacity::available);
}

std::optional<Allocation> BundlePool::allocate(const ResourceRequest& req) {
  auto a = sched::allocate(pool_, plain(req));
  if (!a) return a;
  Allocation out = *a;
  out.node = reserved_.node;
  for (auto& [d, f] : out.gpus) d = reserved_.gpus[d].first;  // pool device -> node device
  return out;
}

std::optional<Allocation> BundlePool::to_local(const Allocation& a) const {
  Allocation local = a;
  for (auto& [d, f] : local.gpus) {
    bool found = false;
    for (std::uint32_t k = 0; k < reserved_.gpus.size() && !found; ++k)
      if (reserved_.gpus[k].first == d) {
        d = k;
        found = true;
      }
    if (!found) return std::nullopt;
  }
  return local;
}

void BundlePool::release(const Allocation& a) {
  if (auto local = to_local(a)) sched::release(pool_, *local);
}

bool BundlePool::adopt(const Allocation& a) {
  auto local = to_local(a);
  return local && sched::reserve(pool_, *local);
}

}  // namespace iogrid::sched
