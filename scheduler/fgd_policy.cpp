#include "scheduler/fgd_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "scheduler/feasibility.hpp"

namespace iogrid::sched {

namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

}  // namespace

void FgdPolicy::expect(const std::vector<ResourceRequest>& requests) {
  WorkloadHistogram h;
  for (const auto& r : requests) h.observe(r);
  if (h.total() == 0) return;
  workload_ = h;
  given_ = true;
  refresh_shapes();
}

void FgdPolicy::refresh_shapes() {
  auto shapes = workload_.shapes();
  auto same = [](const std::vector<TaskShape>& a, const std::vector<TaskShape>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i].gpus != b[i].gpus || a[i].cpus != b[i].cpus || a[i].models != b[i].models ||
          std::abs(a[i].weight - b[i].weight) > 1e-3)
        return false;
    return true;
  };
  if (same(shapes, shapes_)) return;  // weights moved by less than 0.1%: keep every node's score
  shapes_ = std::move(shapes);
  groups_.clear();
  for (const auto& sh : shapes_) {
    auto g = std::find_if(groups_.begin(), groups_.end(), [&](const Group& x) { return x.gpus == sh.gpus && x.models == sh.models; });
    if (g == groups_.end()) {
      groups_.push_back(Group{sh.gpus, sh.models, {}, 0});
      g = std::prev(groups_.end());
    }
    g->cpus.emplace_back(sh.cpus, sh.weight);
    g->weight += sh.weight;
  }
  thresholds_.clear();
  for (const auto& sh : shapes_) thresholds_.push_back(sh.cpus);
  std::sort(thresholds_.begin(), thresholds_.end());
  thresholds_.erase(std::unique(thresholds_.begin(), thresholds_.end()), thresholds_.end());
  for (auto& g : groups_) {
    // ok[k]: a node with CPUs at level k (at least thresholds_[k-1], less than thresholds_[k]) runs the
    // group's shapes needing at most thresholds_[k-1].
    g.ok.assign(thresholds_.size() + 1, 0.0);
    for (const auto& [c, w] : g.cpus) {
      const auto k = static_cast<std::size_t>(std::lower_bound(thresholds_.begin(), thresholds_.end(), c) - thresholds_.begin());
      for (std::size_t l = k + 1; l < g.ok.size(); ++l) g.ok[l] += w;
    }
  }
  ++epoch_;
}

const FgdPolicy::ClassMasks& FgdPolicy::masks(std::int32_t cls, const Node& n) {
  if (masks_.size() <= static_cast<std::size_t>(cls)) masks_.resize(static_cast<std::size_t>(cls) + 1);
  auto& cm = masks_[static_cast<std::size_t>(cls)];
  if (cm.epoch == epoch_) return cm;
  cm.epoch = epoch_;
  const std::size_t g = n.gpus.size();
  cm.uniform = true;
  for (const auto& d : n.gpus) cm.uniform = cm.uniform && d.model == n.gpus.front().model;
  cm.m.assign(groups_.size() * g, 0);
  cm.any.assign(groups_.size(), 0);
  for (std::size_t j = 0; j < groups_.size(); ++j)
    for (std::size_t d = 0; d < g; ++d)
      if (groups_[j].models.empty() ||
          std::find(groups_[j].models.begin(), groups_[j].models.end(), n.gpus[d].model) != groups_[j].models.end())
        cm.m[j * g + d] = cm.any[j] = 1;
  return cm;
}

void FgdPolicy::fill_base(const ClassMasks& cm, const Node& n, Base& b) const {
  const std::size_t g = n.gpus.size();
  b.cpus = n.available.cpus;
  b.free = 0;
  for (const auto& d : n.gpus) b.free += d.free;
  b.part.assign(groups_.size(), 0);
  for (std::size_t j = 0; j < groups_.size(); ++j) {
    const std::uint8_t* m = cm.m.data() + j * g;
    Milli part = 0;
    for (std::size_t d = 0; d < g; ++d) {
      const Milli f = n.gpus[d].free;
      if (groups_[j].gpus < kOne) part += (!m[d] || f < groups_[j].gpus) ? f : 0;  // stranded by a share
      else part += (m[d] && f == kOne) ? 1 : 0;                                     // fully free devices
    }
    b.part[j] = part;
  }
}

// fragmentation.hpp's rules, group by group: shapes whose CPUs do not fit strand all free GPU capacity.
double FgdPolicy::frag_after(const ClassMasks& cm, const Base& b, Milli cpus, const std::vector<Change>& changes) const {
  Milli free = b.free;
  for (const auto& c : changes) free += c.after - c.before;
  if (free == 0) return 0;
  const std::size_t g = cm.any.empty() ? 0 : cm.m.size() / cm.any.size();
  const std::size_t lvl = level(b.cpus - cpus);
  double out = 0;
  for (std::size_t j = 0; j < groups_.size(); ++j) {
    const auto& gr = groups_[j];
    if (!cm.any[j]) {
      out += gr.weight * double(free);
      continue;
    }
    const std::uint8_t* m = cm.m.data() + j * g;
    Milli part = b.part[j];
    for (const auto& c : changes) {
      if (gr.gpus < kOne) {
        part += ((!m[c.device] || c.after < gr.gpus) ? c.after : 0) - ((!m[c.device] || c.before < gr.gpus) ? c.before : 0);
      } else {
        part += ((m[c.device] && c.after == kOne) ? 1 : 0) - ((m[c.device] && c.before == kOne) ? 1 : 0);
      }
    }
    const double ok = gr.ok[lvl];
    Milli u = gr.gpus < kOne ? part : (part * kOne < gr.gpus ? free : free - part * kOne);
    out += (gr.weight - ok) * double(free) + ok * double(u);
  }
  return out;
}

FgdPolicy::Scored FgdPolicy::score(const ClassMasks& cm, const Node& n, const ResourceRequest& req, const Memo& memo) {
  Scored best{std::numeric_limits<double>::infinity(), -1};
  changes_.clear();
  if (req.gpus <= 0) {
    best.growth = frag_after(cm, memo.base, req.cpus, changes_) - memo.frag;
  } else if (req.gpus < kOne) {
    // Every device the share could go to (devices with equal free fractions of one model end alike).
    for (std::uint32_t d = 0; d < n.gpus.size(); ++d) {
      const Milli f = n.gpus[d].free;
      if (f < req.gpus || !gpu_matches(n.gpus[d], req)) continue;
      bool tried = false;
      for (std::uint32_t e = 0; e < d && !tried; ++e)
        tried = n.gpus[e].free == f && n.gpus[e].model == n.gpus[d].model && gpu_matches(n.gpus[e], req);
      if (tried) continue;
      changes_.assign(1, Change{d, f, f - req.gpus});
      double g = frag_after(cm, memo.base, req.cpus, changes_) - memo.frag;
      // Ties between devices go to the fuller one (allocate()'s own choice).
      if (g < best.growth - 1e-9 || (g < best.growth + 1e-9 && f < best.device_free)) best = Scored{g, f};
    }
  } else {
    Milli need = req.gpus;
    for (std::uint32_t d = 0; d < n.gpus.size() && need > 0; ++d)
      if (n.gpus[d].free == kOne && gpu_matches(n.gpus[d], req)) {
        changes_.push_back(Change{d, kOne, 0});
        need -= kOne;
      }
    best.growth = frag_after(cm, memo.base, req.cpus, changes_) - memo.frag;
  }
  return best;
}

std::optional<std::uint32_t> FgdPolicy::select(const ClusterState& state, const ResourceRequest& req) {
  device_.reset();
  if (!given_) {
    workload_.observe(req);
    ++seen_;
    // Re-read the histogram at 1, 2, 4, ... 1024 requests, then every 1024 (a refresh re-scores every node).
    const bool power_of_two = (seen_ & (seen_ - 1)) == 0;
    if (req.gpus > 0 && (shapes_.empty() || (seen_ <= 1024 && power_of_two) || seen_ % 1024 == 0)) refresh_shapes();
  }
  if (shapes_.empty()) return state.best_fit(req);
  memo_.resize(state.size());
  struct Choice {
    std::optional<std::uint32_t> node;
    double growth = 0;
    Milli left = 0;
    Milli device_free = -1;
  } best;
  std::int32_t cls = -2;
  std::size_t states = 0, visited = 0;
  const std::size_t node_cap = states_per_class_ * kNodesPerState;
  state.candidates(req, ClusterState::Order::tightest, std::numeric_limits<std::size_t>::max(), [&](const Node& n) {
    const auto c = state.class_of(n.index);
    if (c != cls) {
      cls = c;
      states = visited = 0;
      decided_.clear();  // signatures include the class: nothing carries over
    }
    if (states_per_class_ != 0 && ++visited > node_cap) return false;  // the cut: next class
    const auto& cm = masks(c, n);
    auto& memo = memo_[n.index];
    if (memo.version != state.version(n.index) || memo.epoch != epoch_) {
      memo.version = state.version(n.index);
      memo.epoch = epoch_;
      fill_base(cm, n, memo.base);
      memo.frag = frag_after(cm, memo.base, 0, changes_none_);
      std::uint64_t h = mix(std::uint64_t(c) + 1, std::uint64_t(n.available.cpus));
      sorted_.clear();
      for (const auto& g : n.gpus) sorted_.push_back(g.free);
      if (cm.uniform) std::sort(sorted_.begin(), sorted_.end());
      for (auto f : sorted_) h = mix(h, std::uint64_t(f));
      memo.sig = h;
    }
    Scored sc;
    bool known = false;
    for (const auto& [sig, done] : decided_)  // this class's states so far (a few dozen at most with the cut)
      if (sig == memo.sig) {
        sc = done;
        known = true;
        break;
      }
    if (!known) {
      if (states_per_class_ != 0 && states >= states_per_class_) return false;  // the cut: next class
      ++states;
      sc = score(cm, n, req, memo);
      if (states_per_class_ != 0) decided_.emplace_back(memo.sig, sc);
    }
    if (sc.growth == std::numeric_limits<double>::infinity()) return true;
    const Milli left = state.fit_key(n.index);
    const bool better = !best.node || sc.growth < best.growth - 1e-9 ||
                        (sc.growth < best.growth + 1e-9 && (left < best.left || (left == best.left && n.index < *best.node)));
    if (better) best = Choice{n.index, sc.growth, left, sc.device_free};
    return true;
  });
  if (best.node && best.device_free >= 0) {
    const auto& n = state.node(*best.node);
    for (std::uint32_t d = 0; d < n.gpus.size(); ++d)
      if (n.gpus[d].free == best.device_free && gpu_matches(n.gpus[d], req)) {
        device_ = d;
        break;
      }
  }
  return best.node;
}

}  // namespace iogrid::sched
