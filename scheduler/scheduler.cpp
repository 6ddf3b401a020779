#include "scheduler/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "scheduler/feasibility.hpp"

namespace iogrid::sched {

Scheduler::Scheduler(std::unique_ptr<SchedulingPolicy> policy, SchedulerOptions opts, Clock now)
    : policy_(std::move(policy)), opts_(opts), now_(std::move(now)) {}

std::int64_t Scheduler::now_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now_().time_since_epoch()).count();
}

void Scheduler::node_changed() {
  cluster_cpus_ = cluster_gpus_ = 0;
  for (const auto& n : state_.nodes()) {
    if (!n.alive) continue;
    cluster_cpus_ += n.total.cpus;
    cluster_gpus_ += Milli(n.gpus.size()) * kOne;
  }
  if (!starving_) return;
  for (std::uint32_t i = 0; i < state_.size(); ++i)
    if (state_.held_for(i) == starving_ && !state_.node(i).alive) {
      choose_holds();
      return;
    }
}

Scheduler::Job& Scheduler::job(const std::string& name) {
  auto it = jobs_.find(name);
  if (it == jobs_.end()) {
    it = jobs_.emplace(name, Job{}).first;
    it->second.name = name;
  }
  return it->second;
}

void Scheduler::set_share(const std::string& name, Share share) {
  if (!(share.weight > 0) || !(share.user_weight > 0)) share.weight = share.user_weight = 1;
  job(name).share = std::move(share);
}

std::uint32_t Scheduler::intern(const ResourceRequest& req) {
  auto key = req.key();
  auto it = shape_ids_.find(key);
  if (it != shape_ids_.end()) return it->second;
  shapes_.push_back(req);
  auto id = static_cast<std::uint32_t>(shapes_.size() - 1);
  shape_ids_.emplace(std::move(key), id);
  return id;
}

Scheduler::ShapeKey Scheduler::shape_key(const ResourceRequest& req, std::optional<BundleRef> bundle) {
  if (!bundle && req.reservation)  // a request naming a reservation targets its bundle, or any of them
    bundle = BundleRef{req.reservation, req.bundle >= 0 ? static_cast<std::uint32_t>(req.bundle) : kAnyBundle};
  return ShapeKey{intern(req), bundle ? bundle->gang : 0, bundle ? bundle->index : 0};
}

std::uint64_t Scheduler::submit(const std::string& name, const ResourceRequest& req, int priority,
                                std::optional<BundleRef> bundle) {
  if (cluster_cpus_ == 0 && cluster_gpus_ == 0) node_changed();
  auto t = next_ticket_++;
  const auto key = shape_key(req, bundle);
  job(name).levels[priority].shapes[key].push_back(Entry{t, next_seq_++, now_ns()});
  ++queued_;
  return t;
}

std::uint64_t Scheduler::submit_gang(const std::string& name, GangRequest gang, int priority) {
  if (cluster_cpus_ == 0 && cluster_gpus_ == 0) node_changed();
  auto t = next_ticket_++;
  job(name).levels[priority].gangs.push_back(PendingGang{t, next_seq_++, now_ns(), std::move(gang)});
  ++queued_;
  return t;
}

std::optional<Grant> Scheduler::reserve_now(const std::string& name, const GangRequest& gang) {
  if (cluster_cpus_ == 0 && cluster_gpus_ == 0) node_changed();
  auto placed = place_gang(state_, gang);
  if (!placed) return std::nullopt;
  auto& j = job(name);
  Grant g;
  g.ticket = next_ticket_++;
  g.job = name;
  g.gang = true;
  g.region = placed->region;
  g.allocations = placed->bundles;
  PlacedGang pg{name, *placed, {}};
  for (const auto& a : placed->bundles) {
    pg.pools.emplace_back(a, state_.node(a.node));
    account(j, a, +1);
  }
  gangs_.emplace(g.ticket, std::move(pg));
  return g;
}

void Scheduler::adopt_gang(std::uint64_t ticket, const std::string& name, const std::vector<Allocation>& bundles) {
  if (cluster_cpus_ == 0 && cluster_gpus_ == 0) node_changed();
  auto& j = job(name);
  PlacedGang pg{name, GangPlacement{bundles, {}}, {}};
  for (const auto& a : bundles) {
    pg.pools.emplace_back(a, state_.node(a.node));
    account(j, a, +1);
  }
  gangs_[ticket] = std::move(pg);
  next_ticket_ = std::max(next_ticket_, ticket + 1);
}

std::vector<Allocation> Scheduler::bundles_on(std::uint32_t node) const {
  std::vector<Allocation> out;
  for (const auto& [t, g] : gangs_)
    for (const auto& a : g.placement.bundles)
      if (a.node == node) out.push_back(a);
  return out;
}

bool Scheduler::adopt_into_bundle(Allocation& a) {
  for (auto& [t, g] : gangs_)
    for (std::uint32_t k = 0; k < g.pools.size(); ++k)
      if (g.pools[k].reserved().node == a.node && g.pools[k].adopt(a)) {
        a.gang = t;
        a.bundle = k;
        return true;
      }
  return false;
}

void Scheduler::cancel(std::uint64_t ticket) {
  if (auto g = gangs_.find(ticket); g != gangs_.end()) {
    auto& j = job(g->second.job);
    for (const auto& a : g->second.placement.bundles) account(j, a, -1);
    release_gang(state_, g->second.placement);
    gangs_.erase(g);
    return;
  }
  if (ticket == 0 || ticket >= next_ticket_) return;
  if (ticket == starving_) {
    starving_ = 0;
    state_.clear_holds();
  }
  cancelled_[ticket] = true;
}

bool Scheduler::feasible(const ResourceRequest& req, std::string* why) const {
  if (!req.reservation) {
    if (state_.feasible(req)) return true;
    if (why) *why = explain_infeasible(state_.view(), req);
    return false;
  }
  auto g = gangs_.find(req.reservation);
  if (g == gangs_.end()) {
    if (why) *why = "reservation " + std::to_string(req.reservation) + " does not exist (deleted or expired?)";
    return false;
  }
  const auto& pools = g->second.pools;
  if (req.bundle >= 0 && static_cast<std::size_t>(req.bundle) >= pools.size()) {
    if (why) *why = "reservation " + std::to_string(req.reservation) + " has " + std::to_string(pools.size()) +
                    " bundles, there is no bundle " + std::to_string(req.bundle);
    return false;
  }
  for (std::size_t k = 0; k < pools.size(); ++k)
    if ((req.bundle < 0 || static_cast<std::size_t>(req.bundle) == k) && pools[k].fits_ever(req)) return true;
  if (why) *why = "no bundle of reservation " + std::to_string(req.reservation) + " can ever hold " + req.describe();
  return false;
}

const GangPlacement* Scheduler::gang(std::uint64_t ticket) const {
  auto it = gangs_.find(ticket);
  return it == gangs_.end() ? nullptr : &it->second.placement;
}

void Scheduler::account(Job& j, const Allocation& a, int sign) {
  j.cpus_held += sign * a.cpus;
  for (const auto& [d, f] : a.gpus) j.gpus_held += sign * f;
  if (sign > 0) j.last_grant = ++grants_;
}

double Scheduler::usage(const Job& j) const {
  double u = 0;
  if (cluster_cpus_ > 0) u = std::max(u, double(j.cpus_held) / double(cluster_cpus_));
  if (cluster_gpus_ > 0) u = std::max(u, double(j.gpus_held) / double(cluster_gpus_));
  return u;
}

double Scheduler::dominant_share(const std::string& name) const {
  auto it = jobs_.find(name);
  return it == jobs_.end() ? 0 : usage(it->second);
}

std::vector<Scheduler::Owed> Scheduler::owed() const {
  std::vector<Owed> out;
  if (queued_ == 0) return out;
  struct Side {
    const Job* job;
    double user, share;  // weighted user and job shares
    int top = std::numeric_limits<int>::min();  // highest priority with waiting work
    bool waits = false;                          // waiters: the oldest waiting cluster-scope shape at `top`
    ShapeKey shape{};
  };
  std::vector<Side> holders, waiters;
  for (const auto& [name, j] : jobs_) {
    Side s{&j, user_usage(j.share.user) / j.share.user_weight, usage(j) / j.share.weight};
    if (!j.levels.empty()) s.top = j.levels.begin()->first;
    if (j.cpus_held > 0 || j.gpus_held > 0) holders.push_back(s);
    std::uint64_t oldest_seq = 0;
    for (const auto& [prio, lvl] : j.levels) {
      for (const auto& [key, q] : lvl.shapes)
        if (std::get<1>(key) == 0 && !q.empty() && (!s.waits || q.front().seq < oldest_seq)) {
          s.waits = true;
          s.shape = key;
          oldest_seq = q.front().seq;
          s.top = prio;
        }
      if (s.waits) break;  // the highest priority with cluster-scope work
    }
    if (s.waits) waiters.push_back(s);
  }
  if (holders.empty() || waiters.empty()) return out;
  // Lowest share waits first; largest holder gives first.
  std::sort(waiters.begin(), waiters.end(), [](const Side& a, const Side& b) {
    return a.user != b.user ? a.user < b.user : a.share < b.share;
  });
  std::sort(holders.begin(), holders.end(), [](const Side& a, const Side& b) {
    return a.user != b.user ? a.user > b.user : a.share > b.share;
  });
  std::unordered_map<const Job*, int> given;  // yields already asked of each holder in this answer
  for (const auto& w : waiters) {
    const auto& req = shapes_[std::get<0>(w.shape)];
    double step = 0;
    if (cluster_cpus_ > 0) step = std::max(step, double(req.cpus) / double(cluster_cpus_));
    if (cluster_gpus_ > 0) step = std::max(step, double(req.gpus) / double(cluster_gpus_));
    for (const auto& h : holders) {
      if (h.job == w.job || h.top > w.top) continue;
      // Each yield already asked of this holder lowers its share by about one of the waiter's requests.
      const double gone = step * given[h.job];
      bool owes;
      if (h.job->share.user != w.job->share.user)
        owes = h.user - gone / h.job->share.user_weight >= w.user + step / w.job->share.user_weight - 1e-9;
      else
        owes = h.share - gone / h.job->share.weight >= w.share + step / w.job->share.weight - 1e-9;
      if (!owes) continue;
      ++given[h.job];
      out.push_back(Owed{h.job->name, w.job->name, req});
      break;
    }
  }
  return out;
}

double Scheduler::user_usage(const std::string& user) const {
  Milli cpus = 0, gpus = 0;
  for (const auto& [n, j] : jobs_)
    if (j.share.user == user) cpus += j.cpus_held, gpus += j.gpus_held;
  double u = 0;
  if (cluster_cpus_ > 0) u = std::max(u, double(cpus) / double(cluster_cpus_));
  if (cluster_gpus_ > 0) u = std::max(u, double(gpus) / double(cluster_gpus_));
  return u;
}

std::optional<Scheduler::Item> Scheduler::oldest(Job& j, int priority, Level& lvl,
                                                 const std::unordered_set<std::uint64_t>& blocked) {
  std::optional<Item> best;
  for (auto it = lvl.shapes.begin(); it != lvl.shapes.end();) {
    auto& q = it->second;
    while (!q.empty() && !cancelled_.empty() && cancelled_.erase(q.front().ticket)) {
      q.pop_front();
      --queued_;
    }
    if (q.empty()) {
      it = lvl.shapes.erase(it);
      continue;
    }
    const auto& e = q.front();
    if (!blocked.count(e.ticket) && (!best || e.seq < best->seq))
      best = Item{&j, priority, it->first, 0, e.ticket, e.seq, e.since_ns};
    ++it;
  }
  for (auto it = lvl.gangs.begin(); it != lvl.gangs.end();) {
    if (!cancelled_.empty() && cancelled_.erase(it->ticket)) {
      it = lvl.gangs.erase(it);
      --queued_;
      continue;
    }
    if (!blocked.count(it->ticket) && (!best || it->seq < best->seq))
      best = Item{&j, priority, std::nullopt, it->ticket, it->ticket, it->seq, it->since_ns};
    ++it;
  }
  return best;
}

std::optional<Grant> Scheduler::try_place(const Item& it, std::optional<std::uint32_t> on_node) {
  auto& lvl = it.job->levels[it.priority];
  Grant g;
  g.ticket = it.ticket;
  g.job = it.job->name;
  if (it.shape) {
    const auto& [shape, gang, bundle] = *it.shape;
    const auto& req = shapes_[shape];
    std::optional<Allocation> a;
    if (gang) {
      auto pg = gangs_.find(gang);
      if (pg == gangs_.end()) return std::nullopt;
      auto& pools = pg->second.pools;
      for (std::uint32_t k = 0; k < pools.size() && !a; ++k) {
        if (bundle != kAnyBundle && bundle != k) continue;
        if (on_node && pools[k].reserved().node != *on_node) continue;
        if (!state_.node(pools[k].reserved().node).alive) continue;  // that bundle was lost with its node
        if ((a = pools[k].allocate(req))) {
          a->gang = gang;
          a->bundle = k;
        }
      }
    } else if (on_node) {
      if (state_.usable(state_.node(*on_node)) && market_ok(state_.node(*on_node), req)) a = state_.allocate(*on_node, req);
      if (a) account(*it.job, *a, +1);
    } else {
      a = policy_->place(state_, req);
      if (a) account(*it.job, *a, +1);
    }
    if (!a) return std::nullopt;
    g.allocations.push_back(*a);
    auto q = lvl.shapes.find(*it.shape);
    q->second.pop_front();
    if (q->second.empty()) lvl.shapes.erase(q);
  } else {
    auto pos = std::find_if(lvl.gangs.begin(), lvl.gangs.end(), [&](const auto& p) { return p.ticket == it.gang; });
    if (pos == lvl.gangs.end()) return std::nullopt;
    auto placed = place_gang(state_, pos->gang);
    if (!placed) return std::nullopt;
    PlacedGang pg{it.job->name, *placed, {}};
    for (const auto& a : placed->bundles) {
      pg.pools.emplace_back(a, state_.node(a.node));
      account(*it.job, a, +1);
    }
    g.allocations = placed->bundles;
    g.region = placed->region;
    g.gang = true;
    gangs_.emplace(it.ticket, std::move(pg));
    lvl.gangs.erase(pos);
  }
  --queued_;
  return g;
}

std::optional<Scheduler::Item> Scheduler::find_item(std::uint64_t ticket) {
  static const std::unordered_set<std::uint64_t> none;
  for (auto& [name, j] : jobs_)
    for (auto& [prio, lvl] : j.levels) {
      for (auto& [key, q] : lvl.shapes)
        if (!q.empty() && q.front().ticket == ticket)
          return Item{&j, prio, key, 0, ticket, q.front().seq, q.front().since_ns};
      for (auto& g : lvl.gangs)
        if (g.ticket == ticket) return Item{&j, prio, std::nullopt, ticket, ticket, g.seq, g.since_ns};
    }
  return std::nullopt;
}

void Scheduler::check_starvation() {
  if (starving_) return;
  const auto limit = now_ns() - std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.starvation_after).count();
  std::optional<Item> oldest_item;
  for (auto& [name, j] : jobs_)
    for (auto& [prio, lvl] : j.levels) {
      for (auto& [key, q] : lvl.shapes)
        if (!q.empty() && std::get<1>(key) == 0 && q.front().since_ns <= limit &&
            (!oldest_item || q.front().seq < oldest_item->seq))
          oldest_item = Item{&j, prio, key, 0, q.front().ticket, q.front().seq, q.front().since_ns};
      for (auto& g : lvl.gangs)
        if (g.since_ns <= limit && (!oldest_item || g.seq < oldest_item->seq))
          oldest_item = Item{&j, prio, std::nullopt, g.ticket, g.ticket, g.seq, g.since_ns};
    }
  if (!oldest_item || cancelled_.count(oldest_item->ticket)) return;
  starving_ = oldest_item->ticket;
  choose_holds();
}

void Scheduler::choose_holds() {
  state_.clear_holds();
  auto it = find_item(starving_);
  if (!it) {
    starving_ = 0;
    return;
  }
  // Where it would go on an empty cluster: those nodes are held for it.
  ClusterView empty = state_.view();
  for (auto& n : empty.nodes) {
    n.available = n.total;
    for (auto& g : n.gpus) g.free = kOne;
  }
  ClusterState blank(std::move(empty));
  GangRequest target;
  if (it->shape) {
    target.bundles = {shapes_[std::get<0>(*it->shape)]};
  } else {
    for (auto& g : it->job->levels[it->priority].gangs)
      if (g.ticket == starving_) target = g.gang;
  }
  if (auto p = place_gang(blank, target))
    for (const auto& a : p->bundles) state_.hold(a.node, starving_);
}

void Scheduler::drop_empty(Job& j) {
  for (auto it = j.levels.begin(); it != j.levels.end();) {
    if (it->second.shapes.empty() && it->second.gangs.empty()) it = j.levels.erase(it);
    else ++it;
  }
}

std::optional<Grant> Scheduler::try_starving(std::optional<std::uint32_t> freed) {
  if (!starving_) return std::nullopt;
  auto it = find_item(starving_);
  if (!it) {
    starving_ = 0;
    state_.clear_holds();
    return std::nullopt;
  }
  if (freed && state_.held_for(*freed) != starving_) return std::nullopt;  // nothing changed for it
  state_.serve(starving_);
  auto g = try_place(*it);
  state_.serve(0);
  if (g) {
    starving_ = 0;
    state_.clear_holds();
  }
  return g;
}

Scheduler::Decision Scheduler::submit_or_place(const std::string& name, const ResourceRequest& req, int priority,
                                               std::optional<BundleRef> bundle) {
  if (cluster_cpus_ == 0 && cluster_gpus_ == 0) node_changed();
  auto& j = job(name);
  const auto key = shape_key(req, bundle);
  auto& q = j.levels[priority].shapes[key];
  Decision d;
  d.ticket = next_ticket_++;
  q.push_back(Entry{d.ticket, next_seq_++, now_ns()});
  ++queued_;
  // Place the shape's queue from its head while it fits (cancelled entries are dropped on the way).
  for (;;) {
    auto& lvl = j.levels[priority];
    auto it = lvl.shapes.find(key);
    if (it == lvl.shapes.end()) break;
    auto& entries = it->second;
    while (!entries.empty() && !cancelled_.empty() && cancelled_.erase(entries.front().ticket)) {
      entries.pop_front();
      --queued_;
    }
    if (entries.empty()) {
      lvl.shapes.erase(it);
      break;
    }
    if (entries.front().ticket == starving_) break;  // the starving item goes through its own path
    const auto& e = entries.front();
    auto g = try_place(Item{&j, priority, key, 0, e.ticket, e.seq, e.since_ns});
    if (!g) break;
    d.grants.push_back(std::move(*g));
  }
  drop_empty(j);
  return d;
}

std::vector<Grant> Scheduler::schedule_freed(std::uint32_t node) {
  std::vector<Grant> grants;
  if (queued_ == 0 || node >= state_.size() || !state_.node(node).alive) return grants;
  check_starvation();
  if (auto g = try_starving(node)) grants.push_back(std::move(*g));
  if (state_.held_for(node) != 0) return grants;  // held for the starving item: nobody else
  const auto& freed = state_.node(node);
  // Every eligible head, in the order of the rules (priority, user share, job share, age).
  struct Cand {
    int priority;
    double user, job;
    Item item;
  };
  std::vector<Cand> cands;
  for (auto& [name, j] : jobs_) {
    double uu = user_usage(j.share.user) / j.share.user_weight, ju = usage(j) / j.share.weight;
    for (auto& [prio, lvl] : j.levels) {
      for (auto& [key, q] : lvl.shapes) {
        while (!q.empty() && !cancelled_.empty() && cancelled_.erase(q.front().ticket)) {
          q.pop_front();
          --queued_;
        }
        if (q.empty() || q.front().ticket == starving_) continue;
        const auto gang = std::get<1>(key);
        if (gang) {  // only bundles on this node gained capacity here
          auto pg = gangs_.find(gang);
          if (pg == gangs_.end()) continue;
          const auto& pools = pg->second.pools;
          const auto b = std::get<2>(key);
          bool here = false;
          for (std::size_t k = 0; k < pools.size(); ++k)
            here = here || ((b == kAnyBundle || b == k) && pools[k].reserved().node == node);
          if (!here) continue;
        } else if (!fits(freed, shapes_[std::get<0>(key)], Capacity::available)) {
          continue;  // cannot use what this node has free
        }
        cands.push_back(Cand{prio, uu, ju, Item{&j, prio, key, 0, q.front().ticket, q.front().seq, q.front().since_ns}});
      }
      for (auto& g : lvl.gangs)
        if (g.ticket != starving_ && !cancelled_.count(g.ticket))
          cands.push_back(Cand{prio, uu, ju, Item{&j, prio, std::nullopt, g.ticket, g.ticket, g.seq, g.since_ns}});
    }
  }
  std::vector<std::size_t> order(cands.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    const auto& a = cands[x];
    const auto& b = cands[y];
    if (a.priority != b.priority) return a.priority > b.priority;
    if (std::abs(a.user - b.user) > 1e-12) return a.user < b.user;
    if (std::abs(a.job - b.job) > 1e-12) return a.job < b.job;
    if (a.item.job != b.item.job) return a.item.job->last_grant < b.item.job->last_grant;
    return a.item.seq < b.item.seq;
  });
  for (auto k : order) {
    auto& c = cands[k];
    // A shape keeps going on this node while it fits (its next entry becomes the head).
    for (;;) {
      auto g = c.item.shape ? try_place(c.item, node) : try_place(c.item);
      if (!g) break;
      grants.push_back(std::move(*g));
      if (!c.item.shape) break;
      auto& lvl = c.item.job->levels[c.item.priority];
      auto q = lvl.shapes.find(*c.item.shape);
      if (q == lvl.shapes.end() || q->second.empty()) break;
      c.item.ticket = q->second.front().ticket;
      if (cancelled_.count(c.item.ticket)) break;
    }
  }
  for (auto& [name, j] : jobs_) drop_empty(j);
  return grants;
}

std::vector<Grant> Scheduler::schedule() {
  std::vector<Grant> grants;
  if (queued_ == 0) return grants;
  check_starvation();
  std::unordered_set<std::uint64_t> blocked;
  if (starving_) {
    if (auto g = try_starving(std::nullopt)) grants.push_back(std::move(*g));
    else if (starving_) blocked.insert(starving_);
  }
  for (;;) {
    // The highest priority with eligible work; among its jobs the smallest weighted share (user, then job).
    std::optional<Item> pick;
    int pick_prio = std::numeric_limits<int>::min();
    double pick_user = 0, pick_job = 0;
    for (auto& [name, j] : jobs_) {
      for (auto& [prio, lvl] : j.levels) {
        if (prio < pick_prio) break;
        auto item = oldest(j, prio, lvl, blocked);
        if (!item) continue;
        double uu = user_usage(j.share.user) / j.share.user_weight;
        double ju = usage(j) / j.share.weight;
        if (!pick || prio > pick_prio || uu < pick_user - 1e-12 ||
            (uu < pick_user + 1e-12 && (ju < pick_job - 1e-12 ||
                                        (ju < pick_job + 1e-12 && j.last_grant < pick->job->last_grant)))) {
          pick = item;
          pick_prio = prio;
          pick_user = uu;
          pick_job = ju;
        }
        break;  // lower priorities of this job wait
      }
    }
    if (!pick) break;
    auto g = try_place(*pick);
    if (g) grants.push_back(std::move(*g));
    else blocked.insert(pick->ticket);
  }
  for (auto& [name, j] : jobs_) drop_empty(j);
  return grants;
}

void Scheduler::release(const std::string& name, const Allocation& a) {
  if (a.gang) {  // back into its bundle (nothing to do if the gang is gone: its capacity went back with it)
    auto pg = gangs_.find(a.gang);
    if (pg != gangs_.end() && a.bundle < pg->second.pools.size()) pg->second.pools[a.bundle].release(a);
    return;
  }
  account(job(name), a, -1);
  state_.release(a);
}

}  // namespace iogrid::sched
