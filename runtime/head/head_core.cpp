#include "runtime/head/head_core.hpp"

#include "runtime/task_stats.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <unordered_map>

#include "iogrid/core/errors.hpp"
#include "runtime/proto/convert.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/policy.hpp"

namespace iogrid::runtime::head {

namespace {

Verifier::Entropy default_entropy() {
  auto rd = std::make_shared<std::random_device>();
  return [rd] { return (std::uint64_t((*rd)()) << 32) ^ (*rd)(); };
}

std::filesystem::path code_dir(const HeadConfig& c) {
  return c.state_dir.empty() ? std::filesystem::temp_directory_path() / ("iogrid-head-" + std::to_string(::getpid())) / "code"
                             : std::filesystem::path(c.state_dir) / "code";
}

}  // namespace

HeadCore::HeadCore(HeadConfig config, HeadEvents& events, HeadClock clock, Verifier::Entropy entropy)
    : config_(std::move(config)),
      events_(events),
      clock_(std::move(clock)),
      sched_(sched::make_policy(config_.policy), {}, clock_.now),
      nodes_(sched_.cluster(), config_.node_timeout),
      leases_(sched_, ledger_),
      reservations_(sched_, ledger_, clock_),
      verifier_(entropy ? std::move(entropy) : default_entropy()),
      code_(code_dir(config_)),
      logs_(config_.state_dir.empty() ? std::filesystem::path() : std::filesystem::path(config_.state_dir) / "logs"),
      history_(config_.history_store ? config_.history_store
                                     : std::make_shared<History>(config_.state_dir.empty()
                                                                     ? std::string(":memory:")
                                                                     : (std::filesystem::path(config_.state_dir) / "history.db").string(),
                                                                 config_.history)),
      info_(config_.announce ? spdlog::level::info : spdlog::level::debug) {
  ledger_ = sched::Ledger(config_.network_fee);
  if (!config_.state_dir.empty()) restore();
}

HeadCore::~HeadCore() = default;

// ---- durable state ----

void HeadCore::restore() {
  store_ = std::make_unique<HeadStore>(config_.state_dir);
  for (const auto& sn : store_->nodes()) {
    std::vector<std::uint8_t> bytes(sn.info.begin(), sn.info.end());
    auto n = proto::decode_node(bytes);
    n.index = sn.index;
    NodeRecord rec;
    rec.host = sn.host;
    nodes_.restore(std::move(n), std::move(rec));  // dead until it rejoins
  }
  const auto now = clock_.now();
  for (const auto& sj : store_->jobs()) {
    JobRecord j;
    j.id = sj.id;
    j.driver = sj.driver;
    j.code_hash = sj.code_hash;
    j.owner_host = sj.owner_host;
    j.owner_port = sj.owner_port;
    j.state = job_state_from(sj.state);
    j.leases_granted = sj.leases_granted;
    j.started_unix_ms = static_cast<std::int64_t>(sj.started);
    j.ended_unix_ms = static_cast<std::int64_t>(sj.ended);
    jobs_.restore(std::move(j), now);
    logs_.restore(sj.id);
  }
  kv_ = store_->kv();
  try {
    ledger_ = sched::Ledger::load(store_->document("ledger"), config_.network_fee);
  } catch (const std::exception& e) {
    spdlog::warn("the ledger in {} is unreadable ({}); starting a new one", store_->path(), e.what());
  }
  try {
    reservations_.load(store_->document("clusters"));
  } catch (const std::exception& e) {
    spdlog::warn("the clusters in {} are unreadable ({}); they are dropped", store_->path(), e.what());
  }
  try {
    prices_ = sched::PriceBook::load(store_->document("prices"));
  } catch (const std::exception& e) {
    spdlog::warn("the posted prices in {} are unreadable ({}); markets start again", store_->path(), e.what());
  }
  const auto dir = std::filesystem::path(config_.state_dir);
  journal_ = std::make_unique<Journal>((dir / "head.db").string(), (dir / "ledger.key").string());
  spdlog::log(spdlog::level::level_enum(info_), "the ledger's journal: {} entries, signed with key {} ({}; keep a copy of it elsewhere)",
              journal_->last(), journal_->fingerprint(), (dir / "ledger.key.pub").string());
  jobs_.set_counter(store_->counter("job"));
  lease_counter_ = lease_reserved_ = store_->counter("lease");
  // Nodes need a moment to rejoin: until then a request nothing alive can hold waits instead of failing.
  if (sched_.cluster().size() > 0) rejoin_grace_until_ = now + config_.rejoin_grace;
  spdlog::log(spdlog::level::level_enum(info_), "restored head state from {}: {} nodes (waiting for them to reconnect), {} jobs, {} keys", store_->path(),
               sched_.cluster().size(), jobs_.all().size(), kv_.size());
}

void HeadCore::save_node(std::uint32_t index) {
  if (!store_) return;
  const auto& n = sched_.cluster().node(index);
  auto bytes = proto::encode(n);
  store_->put_node(StoredNode{index, n.name, std::string(bytes.begin(), bytes.end()), nodes_[index].host, n.alive});
}

void HeadCore::save_job(const JobRecord& j) {
  if (!store_) return;
  store_->put_job(StoredJob{j.id, j.driver, j.code_hash, j.owner_host, to_string(j.state), j.owner_port, j.leases_granted,
                            static_cast<std::uint64_t>(j.started_unix_ms), static_cast<std::uint64_t>(j.ended_unix_ms)});
}

void HeadCore::journal_charges() {
  auto charges = ledger_.take_charges();
  if (!journal_) return;  // no state directory: the totals only
  for (const auto& c : charges) {
    JournalEntry e;
    e.kind = c.kind;
    e.job = c.job;
    e.reservation = c.reservation;
    e.node = c.node;
    e.gpus = c.gpus;
    e.seconds = c.seconds;
    e.price = c.price;
    e.tier = c.tier;
    e.charge = c.split.charge;
    e.earning = c.split.earning;
    e.fee = c.split.fee;
    if (const auto* j = c.job.empty() ? nullptr : jobs_.find(c.job)) e.user = j->user;
    if (auto n = sched_.cluster().find(c.node)) {
      const auto& node = sched_.cluster().node(*n);
      if (!node.gpus.empty()) e.gpu_model = node.gpus.front().model;
      // The provider's state when the charge ended: its GPUs' verification and its reputation (provenance).
      bool verified = true;
      for (const auto& g : node.gpus) verified = verified && g.verified;
      char rep[48];
      std::snprintf(rep, sizeof rep, "reputation %.3f", node.reputation);
      e.detail = (node.gpus.empty() ? std::string() : verified ? "GPUs verified, " : "GPUs unverified, ") + rep;
    }
    try {
      journal_->append(std::move(e));
    } catch (const std::exception& x) {
      spdlog::error("the ledger's journal: {}", x.what());
    }
  }
  const auto now = clock_.now();
  if (now - last_checkpoint_ >= std::chrono::seconds(kCheckpointEvery)) {
    last_checkpoint_ = now;
    try {
      journal_->checkpoint();
    } catch (const std::exception& x) {
      spdlog::error("the ledger's journal: {}", x.what());
    }
  }
}

// ---- the market (scheduler/pricing.hpp) ----
// Each round, per market (GPU model and region of live nodes): capacity is the GPUs of nodes asking at most the
// posted price plus the busy GPUs of the others, use the GPUs leased, queue the GPUs of waiting requests that
// accept the model (shared among the model's regions). A market opens when its first provider joins, at its ask
// (at the median of its nodes' asks when a round finds several it has no price for). Posted prices are published (status, `iogrid market`, /api/v1/market) and kept with their
// history; then each node's posted price is set: GPU work pays it (x its tier) and only providers asking at most
// that get the work (scheduler/feasibility.hpp market_ok).
void HeadCore::pricing_round(Clock::time_point now) {
  if (config_.pricing_round.count() <= 0) return;
  if (last_pricing_ != Clock::time_point{} && now - last_pricing_ < config_.pricing_round) return;
  last_pricing_ = now;
  std::map<std::string, sched::MarketSample> samples;
  std::map<std::string, std::vector<std::string>> markets_of_model;
  const auto& cl = sched_.cluster();
  auto market_of = [](const sched::Node& n) { return sched::PriceBook::market(n.gpus.front().model, n.region()); };
  // Only priced providers make a market: a node asking nothing (an operator's own, unpriced) is free to use.
  auto priced = [](const sched::Node& n) { return n.alive && !n.gpus.empty() && n.price_per_gpu_hour > 0; };
  // A market seen for the first time starts at the median of its nodes' asks.
  std::map<std::string, std::vector<double>> asks;
  for (std::uint32_t i = 0; i < cl.size(); ++i)
    if (const auto& n = cl.node(i); priced(n) && !prices_.has(market_of(n))) asks[market_of(n)].push_back(n.price_per_gpu_hour);
  for (auto& [m, a] : asks) {
    std::sort(a.begin(), a.end());
    prices_.set(m, a[a.size() / 2]);
  }
  for (std::uint32_t i = 0; i < cl.size(); ++i) {
    const auto& n = cl.node(i);
    if (!priced(n)) continue;
    const auto m = market_of(n);
    auto& lowest = samples[m].min_ask;
    if (n.price_per_gpu_hour > 0 && (lowest == 0 || n.price_per_gpu_hour < lowest)) lowest = n.price_per_gpu_hour;
    double busy = 0;
    for (const auto& g : n.gpus) busy += 1.0 - double(g.free) / double(sched::kOne);
    auto& s = samples[m];
    s.used += busy;
    s.capacity += n.price_per_gpu_hour <= prices_.price(m) ? double(n.gpus.size()) : busy;
    auto& list = markets_of_model[n.gpus.front().model];
    if (std::find(list.begin(), list.end(), m) == list.end()) list.push_back(m);
  }
  for (const auto& [ticket, p] : leases_.waiting()) {
    const double gpus = double(p.request.gpus) / double(sched::kOne);
    if (gpus <= 0 || p.request.tier == sched::Tier::spot) continue;  // spot takes what is left (pricing.hpp)
    std::vector<std::string> accepted;
    for (const auto& [model, list] : markets_of_model)
      if (p.request.gpu_models.empty() || std::find(p.request.gpu_models.begin(), p.request.gpu_models.end(), model) != p.request.gpu_models.end())
        accepted.insert(accepted.end(), list.begin(), list.end());
    for (const auto& m : accepted) samples[m].queued += gpus / double(accepted.size());
  }
  if (samples.empty()) return;
  const auto ms = clock_.unix_ms();
  for (const auto& [m, price] : prices_.round(samples, ms)) {
    if (!samples.count(m)) continue;
    history_->record("market/" + m + "/price", ms, price);
    history_->record("market/" + m + "/utilisation", ms, sched::utilisation(samples[m]));
  }
  // The posted prices bind: what GPU work pays on each node, and which providers' asks it meets.
  for (std::uint32_t i = 0; i < sched_.cluster().size(); ++i) {
    const auto& n = sched_.cluster().node(i);
    if (priced(n)) sched_.cluster().set_posted_price(i, prices_.price(market_of(n)));
  }
  sched_.node_changed();
  if (store_) store_->put_document("prices", prices_.save());
}

std::string HeadCore::market_json(const nlohmann::json& args) const {
  const auto& r = prices_.rules();
  nlohmann::json out{{"round_s", std::chrono::duration<double>(config_.pricing_round).count()},
                     {"rules", {{"target", r.target}, {"band", {r.band_low, r.band_high}}, {"gain", r.gain},
                                {"queue_gain", r.queue_gain}, {"max_step", r.max_step}, {"floor", r.floor}, {"cap", r.cap},
                                {"quote_validity_s", r.quote_validity.count()}}},
                     {"tiers", nlohmann::json::object()}, {"markets", nlohmann::json::array()}};
  for (auto t : {sched::Tier::spot, sched::Tier::standard, sched::Tier::urgent})
    out["tiers"][sched::to_string(t)] = {{"multiplier", sched::tier_rule(t).multiplier}, {"priority", sched::tier_rule(t).priority}};
  const std::size_t points = args.value("history", nlohmann::json(60)).is_number_unsigned() ? args["history"].get<std::size_t>() : 60;
  for (const auto& m : prices_.markets()) {
    nlohmann::json h = nlohmann::json::array();
    const auto& hist = prices_.history(m);
    for (std::size_t i = hist.size() > points ? hist.size() - points : 0; i < hist.size(); ++i)
      h.push_back({{"t", hist[i].time_ms}, {"price", hist[i].price}, {"utilisation", hist[i].utilisation}});
    out["markets"].push_back({{"market", m}, {"price", prices_.price(m)},
                              {"utilisation", hist.empty() ? 0.0 : hist.back().utilisation}, {"history", h}});
  }
  if (args.contains("quote")) {
    const auto& q = args["quote"];
    const std::string market = sched::PriceBook::market(q.value("model", std::string()), q.value("region", std::string()));
    if (!prices_.has(market)) throw core::Error("iogrid: no market '" + market + "' (see iogrid market)");
    const auto tier = sched::parse_tier(q.value("tier", std::string("standard")));
    if (!tier) throw core::Error("iogrid: unknown tier '" + q.value("tier", std::string()) + "' (spot, standard or urgent)");
    const double gpus = q.value("gpus", 1.0), hours = q.value("hours", 1.0);
    if (!(gpus > 0) || !(hours > 0)) throw core::Error("iogrid: a quote needs --gpus and --hours above 0");
    const auto quote = sched::quote(prices_.price(market), *tier, gpus, hours, q.value("max_price", 0.0), clock_.unix_ms(), r);
    out["quote"] = {{"market", market}, {"posted", prices_.price(market)}, {"tier", sched::to_string(*tier)}, {"gpus", gpus}, {"hours", hours},
                    {"price_per_gpu_hour", quote.price_per_gpu_hour}, {"total", quote.total},
                    {"valid_until_ms", quote.valid_until_ms}, {"within_max_price", quote.within_max_price}};
  }
  return out.dump();
}

void HeadCore::save_books() {
  journal_charges();
  const bool ledger = leases_.take_ledger_changed() || clusters_changed_;
  if (store_ && ledger) store_->put_document("ledger", ledger_.save());
  if (store_ && clusters_changed_) store_->put_document("clusters", reservations_.save());
  clusters_changed_ = false;
}

std::uint64_t HeadCore::next_lease_id() {
  const auto id = ++lease_counter_;
  if (store_ && id > lease_reserved_) {  // ids are reserved in blocks so a restart never reuses one
    lease_reserved_ = id + 1000;
    store_->put_counter("lease", lease_reserved_);
  }
  return id;
}

std::vector<OwnerId> HeadCore::all_owners() const {
  std::vector<OwnerId> out;
  out.reserve(jobs_.owners().size());
  for (const auto& [id, o] : jobs_.owners()) out.push_back(id);
  return out;
}

// ---- nodes ----

Joined HeadCore::join(Join j) {
  const auto now = clock_.now();
  auto node = std::move(j.node);
  node.alive = true;
  // A market's posted price binds a node that joins between rounds at once (scheduler/pricing.hpp); a node of a
  // market not seen yet opens it at its own ask (the rounds take it from there).
  if (!node.gpus.empty() && node.price_per_gpu_hour > 0 && config_.pricing_round.count() > 0) {
    const auto m = sched::PriceBook::market(node.gpus.front().model, node.region());
    if (!prices_.has(m)) prices_.set(m, node.price_per_gpu_hour);
    node.posted_price = prices_.price(m);
  }
  node.available = node.total;
  for (auto& g : node.gpus) g.free = sched::kOne;
  NodeRecord rec;
  rec.liveness = j.liveness;
  rec.host = j.host;
  rec.reach = j.reach;
  const auto prev = j.previous_index;
  const bool rejoined = j.rejoin && prev < sched_.cluster().size() && !sched_.cluster().node(prev).alive &&
                        sched_.cluster().node(prev).name == j.previous_name;
  Joined out;
  out.rejoined = rejoined;
  if (rejoined) {
    // The same daemon after a head restart or a dropped connection: same identity, its leases still run.
    // Clusters placed here before a head restart take their bundles out first; leases running inside them go
    // back into their bundle.
    for (const auto& bundle : sched_.bundles_on(prev))
      if (!sched::reserve(node, bundle)) spdlog::warn("node {} no longer has room for a cluster bundle placed on it", j.previous_name);
    for (auto& l : j.leases) {
      auto alloc = l.alloc;
      alloc.node = prev;
      alloc.lease = l.lease;
      if (!sched_.adopt_into_bundle(alloc) && !sched::reserve(node, alloc)) continue;
      OwnerId owner = 0;
      if (auto* job = jobs_.find(l.job)) {
        owner = job->driver_owner;
        ++job->active_leases;
        job->nodes_used.insert(prev);
        if (alloc.gang) job->reservations.insert(alloc.gang);
      }
      leases_.start(l.lease, LeaseRecord{l.job, owner, l.owner_lease, alloc, alloc.gang, now, node.price_per_gpu_hour});
      sched_.account(l.job, alloc);
      ++rec.active_leases;
    }
    nodes_.rejoin(prev, std::move(node), std::move(rec), now);
    out.index = prev;
    spdlog::log(spdlog::level::level_enum(info_), "node {} rejoined from {} with {} running leases", j.previous_name, j.host, nodes_[prev].active_leases);
    history_->event(clock_.unix_ms(), "node", j.previous_name,
                    "rejoined from " + j.host + " with " + std::to_string(nodes_[prev].active_leases) + " running leases");
  } else {
    out.index = nodes_.add(std::move(node), std::move(rec), now);
    spdlog::log(spdlog::level::level_enum(info_), "node {} joined from {}: {}", sched_.cluster().node(out.index).name, j.host,
                 sched_.cluster().node(out.index).describe());
    history_->event(clock_.unix_ms(), "node", sched_.cluster().node(out.index).name,
                    "joined from " + j.host + ": " + sched_.cluster().node(out.index).describe());
  }
  sched_.node_changed();
  out.name = sched_.cluster().node(out.index).name;
  save_node(out.index);
  return out;
}

void HeadCore::admit(std::uint32_t node) {
  // GPUs a node found itself arrive unverified: they are challenged at once (declared ones are trusted as
  // declared until `iogrid verify`).
  bool unverified = false;
  for (const auto& g : sched_.cluster().node(node).gpus) unverified = unverified || !g.verified;
  if (unverified) start_verification(node, config_.verify_size, 0);
  full_pass();
}

void HeadCore::driver_dialled_back(const std::string& job, const std::string& host, std::uint16_t port, bool open) {
  auto* j = jobs_.find(job);
  if (!j) return;
  auto& r = j->driver_reach;
  if (r.observed_host != host || r.data_port != port) return;  // resumed since, from elsewhere
  r.inbound = open ? transport::Inbound::open : transport::Inbound::closed;
  if (open) return;
  // Said now, rather than as leases that time out later: its workers on other machines cannot connect to it.
  const std::string path = transport::path_of(r);
  spdlog::warn("job {}: its driver at {}:{} accepts no connections ({}): its workers connect through the head's relay "
               "(without one, `iogrid head --no-relay`, they cannot reach it)",
               job, host, port, path);
  history_->event(clock_.unix_ms(), "job", job, "its driver accepts no connections (" + path + ", seen from " + host + ")");
}

void HeadCore::dialled_back(std::uint32_t node, const std::string& host, std::uint16_t port, bool open) {
  if (node >= nodes_.size() || !nodes_.alive(node)) return;
  auto& r = nodes_[node].reach;
  if (r.observed_host != host || r.data_port != port) return;  // rejoined since, from elsewhere
  r.inbound = open ? transport::Inbound::open : transport::Inbound::closed;
  const auto& name = sched_.cluster().node(node).name;
  const std::string path = transport::path_of(r);
  spdlog::log(spdlog::level::level_enum(info_), "node {} is {} (seen from {}:{}, its own address {}, dialled back: {})", name,
              path, r.observed_host, r.observed_port, r.local_host.empty() ? "?" : r.local_host, open ? "yes" : "no");
  if (path != "public")
    history_->event(clock_.unix_ms(), "node", name,
                    path == "nat" ? "is behind a NAT (seen from " + r.observed_host + ", its own address " + r.local_host + ")"
                                  : "accepts no incoming connections (firewalled)");
}

void HeadCore::heartbeat(std::uint32_t node, StoreFigures store, std::vector<gpu::Telemetry> telemetry) {
  if (!nodes_.known(node)) return;
  // Telemetry goes into the history once per raw interval per node (heartbeats come far more often).
  const auto now = clock_.now();
  auto& last = last_telemetry_[node];
  if (!telemetry.empty() && (last == Clock::time_point{} || now - last >= config_.history.raw_interval)) {
    last = now;
    const auto ms = clock_.unix_ms();
    const auto prefix = "gpu/" + sched_.cluster().node(node).name + "/";
    for (const auto& t : telemetry) {
      const auto p = prefix + std::to_string(t.index) + "/";
      history_->record(p + "temperature_c", ms, t.temperature_c);
      history_->record(p + "power_w", ms, t.power_w);
      history_->record(p + "power_limit_w", ms, t.power_limit_w);
      history_->record(p + "utilization_pct", ms, t.utilization_pct);
      history_->record(p + "memory_used_gib", ms, t.memory_used_gib);
      history_->record(p + "sm_clock_mhz", ms, t.sm_clock_mhz);
    }
  }
  nodes_.heartbeat(node, store, std::move(telemetry), now);
}

void HeadCore::node_lost(std::uint32_t index, const std::string& why) {
  if (!nodes_.mark_dead(index)) return;
  leases_.credit(index, sched::Outcome::node_died);
  sched_.node_changed();
  const auto name = sched_.cluster().node(index).name;
  spdlog::warn("node {} is dead: {}", name, why);
  history_->event(clock_.unix_ms(), "node", name, "dead: " + why);
  // A node that died may come back (a daemon restarted, a machine that was starved or cut off): for a while,
  // requests that only it could hold wait for it instead of failing as infeasible.
  rejoin_grace_until_ = std::max(rejoin_grace_until_, clock_.now() + config_.rejoin_grace);
  save_node(index);
  for (auto& l : leases_.lose_node(index, clock_.now())) {
    if (l.owner) events_.refuse_lease(l.owner, l.owner_lease, "node " + name + " died", LeaseRefusal::ask_again);
    if (auto* j = jobs_.find(l.job); j && j->active_leases > 0) --j->active_leases;
  }
  auto& objects = nodes_[index].objects;
  if (!objects.empty())
    spdlog::warn("{} object copies were on node {}; their owners rebuild what they still need", objects.size(), name);
  objects.clear();
  events_.node_died(index, name, why, all_owners());
  // Requests that only that node could ever satisfy now fail.
  refuse_infeasible_pending();
}

void HeadCore::objects_added(std::uint32_t node, const std::vector<std::uint64_t>& keys, const std::vector<std::uint64_t>& sizes) {
  if (!nodes_.known(node)) return;
  auto& objects = nodes_[node].objects;
  for (std::size_t i = 0; i < keys.size() && i < sizes.size(); ++i) objects[keys[i]] = sizes[i];
}

void HeadCore::objects_removed(std::uint32_t node, const std::vector<std::uint64_t>& keys) {
  if (!nodes_.known(node)) return;
  for (auto k : keys) nodes_[node].objects.erase(k);
}

// ---- jobs and owners ----

Registered HeadCore::register_owner(OwnerId owner, const Registration& r) {
  Owner o;
  o.host = r.owner_host;
  o.port = r.owner_port;
  Registered out;
  if (!r.resume_job.empty()) {
    auto* j = jobs_.find(r.resume_job);
    if (!j || j->state != JobState::running) {
      out.error = !j ? "the head does not know this job" : std::string("the job has ") + to_string(j->state);
      return out;
    }
    j->driver_owner = owner;
    j->owner_host = o.host;
    j->owner_port = o.port;
    j->driver_reach = r.reach;
    leases_.reassign(j->id, owner);
    out.need_code = !code_.has(j->code_hash);
    o.job = j->id;
    spdlog::log(spdlog::level::level_enum(info_), "job {} resumed by {}", j->id, j->driver);
    save_job(*j);
  } else if (!r.parent_job.empty()) {
    if (!jobs_.find(r.parent_job)) {
      out.error = "unknown job " + r.parent_job;
      return out;
    }
    o.job = r.parent_job;
  } else {
    JobRecord j;
    j.driver_owner = owner;
    j.driver = r.driver;
    j.code_hash = r.code_hash;
    sched::Share share;
    if (!r.user.empty()) share.user = r.user;
    if (r.weight > 0) share.weight = r.weight;
    if (auto uw = config_.user_weights.find(share.user); uw != config_.user_weights.end()) share.user_weight = uw->second;
    j.user = share.user;
    j.weight = share.weight;
    j.owner_host = o.host;
    j.owner_port = o.port;
    j.driver_reach = r.reach;
    j.started_unix_ms = clock_.unix_ms();
    auto& job = jobs_.create(std::move(j));
    sched_.set_share(job.id, share);
    if (store_) store_->put_counter("job", jobs_.counter());
    out.need_code = !code_.has(job.code_hash);
    o.job = job.id;
    spdlog::log(spdlog::level::level_enum(info_), "job {} started by {} (code {})", job.id, job.driver, job.code_hash.substr(0, 12));
    history_->event(job.started_unix_ms, "job", job.id, "started by " + job.driver + " (user " + job.user + ")");
    if (!r.submission.empty()) logs_.bind_submission(r.submission, job.id);
    save_job(job);
  }
  out.ok = true;
  out.job = o.job;
  jobs_.add_owner(owner, std::move(o));
  return out;
}

void HeadCore::owner_gone(OwnerId owner, const std::string& why) {
  auto o = jobs_.remove_owner(owner);
  if (!o) return;
  // Leases this owner was still waiting for will never be used.
  leases_.drop_pending([&](const PendingLease& p) { return p.owner == owner; });
  if (auto* j = jobs_.find(o->job); j && j->driver_owner == owner) {
    end_job(*j, JobState::failed, "its driver disconnected (" + why + ")");
    j->driver_owner = 0;
  }
  leases_.forget_owner(owner);
}

void HeadCore::driver_finished(OwnerId owner, const std::string& reason) {
  const auto* o = jobs_.owner(owner);
  if (!o) return;
  if (auto* j = jobs_.find(o->job); j && j->driver_owner == owner)
    end_job(*j, JobState::finished, reason.empty() ? "its driver finished" : reason);
}

bool HeadCore::stop_job(const std::string& job, const std::string& who) {
  auto* j = jobs_.find(job);
  if (!j) return false;
  spdlog::log(spdlog::level::level_enum(info_), "job {} stopped by {}", job, who);
  end_job(*j, JobState::stopped, "stopped by an operator");
  return true;
}

void HeadCore::end_job(JobRecord& j, JobState to, const std::string& why) {
  if (!jobs_.end(j, to, clock_.unix_ms())) return;
  spdlog::log(spdlog::level::level_enum(info_), "job {} {}: {}", j.id, to_string(to), why);
  history_->event(clock_.unix_ms(), "job", j.id, std::string(to_string(to)) + ": " + why);
  save_job(j);
  leases_.drop_pending([&](const PendingLease& p) {
    const auto* o = jobs_.owner(p.owner);
    return !o || o->job == j.id;
  });
  // The job's owners stop too (the driver itself only when someone else ended its job).
  std::vector<OwnerId> tell;
  for (const auto& [id, o] : jobs_.owners())
    if (o.job == j.id && (id != j.driver_owner || to == JobState::stopped)) tell.push_back(id);
  events_.job_ended(j.id, why, tell);
}

// ---- leases ----

bool HeadCore::request_lease(OwnerId owner, std::uint64_t owner_lease, const sched::ResourceRequest& request) {
  const auto* o = jobs_.owner(owner);
  if (!o) return false;
  std::string why;
  if (!sched_.feasible(request, &why) && (request.reservation || clock_.now() >= rejoin_grace_until_)) {
    ++stats_.leases_infeasible;
    events_.refuse_lease(owner, owner_lease, "iogrid: " + why, LeaseRefusal::never_fits);
    return true;
  }
  const std::string& job = o->job;
  if (request.reservation)
    if (auto* j = jobs_.find(job)) j->reservations.insert(request.reservation);
  auto d = sched_.submit_or_place(job, request, request.priority);
  if (const auto* mine = d.mine(); mine && d.grants.size() == 1) {  // the common case: granted at once
    if (!grant(owner, owner_lease, request, mine->allocations.front()))
      sched_.release(job, mine->allocations.front());
    return true;
  }
  if (!d.mine()) ++stats_.leases_queued;
  leases_.wait(d.ticket, PendingLease{owner, owner_lease, request});
  hand_out(std::move(d.grants));
  return true;
}

bool HeadCore::grant(OwnerId owner, std::uint64_t owner_lease, const sched::ResourceRequest& request, const sched::Allocation& alloc) {
  const auto reservation = request.reservation;
  const auto* o = jobs_.owner(owner);
  if (!o) return false;
  auto* j = jobs_.find(o->job);
  if (!j || j->state != JobState::running) return false;
  const auto id = next_lease_id();
  auto& l = leases_.start(id, LeaseRecord{j->id, owner, owner_lease, alloc, reservation, clock_.now(),
                                          sched::pay_price(sched_.cluster().node(alloc.node), request),
                                          sched::to_string(request.tier)});
  l.alloc.lease = id;
  j->nodes_used.insert(alloc.node);
  ++j->leases_granted;
  ++j->active_leases;
  ++nodes_[alloc.node].active_leases;
  ++stats_.leases_granted;
  events_.start_lease(alloc.node, LeaseGrant{id, owner, owner_lease, j->id, j->code_hash, o->host, o->port, l.alloc});
  return true;
}

void HeadCore::hand_out(std::vector<sched::Grant> grants) {
  for (auto& g : grants) {
    auto p = leases_.take_pending(g.ticket);
    if (!p || !grant(p->owner, p->owner_lease, p->request, g.allocations.front()))
      sched_.release(g.job, g.allocations.front());
  }
}

void HeadCore::full_pass() {
  last_full_pass_ = clock_.now();
  if (leases_.pending() > 0) hand_out(sched_.schedule());
}

void HeadCore::ask_yields() {
  if (config_.yield_after.count() <= 0) return;
  auto owed = sched_.owed();
  if (owed.empty()) return;
  const auto now = clock_.now();
  // Each owing job's leases that may yield, oldest first.
  std::unordered_map<std::string, std::vector<std::pair<Clock::time_point, std::uint64_t>>> candidates;
  for (const auto& o : owed) candidates.try_emplace(o.holder);
  for (const auto& [id, l] : leases_.running()) {
    auto it = candidates.find(l.job);
    if (it == candidates.end() || l.yielding || !l.owner || l.alloc.gang || l.reservation ||
        now - l.start < config_.yield_after)
      continue;
    it->second.emplace_back(l.start, id);
  }
  for (auto& [job, c] : candidates) std::sort(c.begin(), c.end());
  auto& state = sched_.cluster();
  for (const auto& o : owed) {
    auto& c = candidates[o.holder];
    for (auto it = c.begin(); it != c.end(); ++it) {
      auto* l = leases_.find(it->second);
      if (!l || l->alloc.node >= state.size() || !state.node(l->alloc.node).alive) continue;
      sched::Node after = state.node(l->alloc.node);
      sched::release(after, l->alloc);
      if (!sched::fits(after, o.request, sched::Capacity::available)) continue;
      l->yielding = true;
      ++stats_.leases_yielded;
      events_.yield_lease(l->owner, l->owner_lease);
      c.erase(it);
      break;
    }
  }
}

void HeadCore::refuse_infeasible_pending() {
  for (auto& p : leases_.drop_pending([&](const PendingLease& q) { return !sched_.feasible(q.request); })) {
    std::string why;
    sched_.feasible(p.request, &why);
    ++stats_.leases_infeasible;
    events_.refuse_lease(p.owner, p.owner_lease, "iogrid: " + why, LeaseRefusal::never_fits);
  }
}

void HeadCore::lease_ended(std::uint64_t lease) {
  const auto* l = leases_.find(lease);
  if (!l) return;
  const auto node = l->alloc.node;
  const bool alive = nodes_.alive(node);
  const auto now = clock_.now();
  auto rec = alive ? leases_.finish(lease, now) : leases_.finish_on_dead_node(lease, now);
  if (alive && nodes_[node].active_leases > 0) --nodes_[node].active_leases;
  if (auto* j = jobs_.find(rec->job); j && j->active_leases > 0) --j->active_leases;
  // An owner whose worker never attached (it failed to start) asks again; others ignore this.
  if (rec->owner) events_.refuse_lease(rec->owner, rec->owner_lease, "the lease ended on its node", LeaseRefusal::ask_again);
  if (alive && leases_.pending() > 0) hand_out(sched_.schedule_freed(node));
}

void HeadCore::worker_blocked(std::uint64_t lease) {
  const auto* l = leases_.find(lease);
  if (!l || !leases_.lend_cpus(lease)) return;
  if (leases_.pending() > 0) hand_out(sched_.schedule_freed(l->alloc.node));
}

void HeadCore::worker_resumed(std::uint64_t lease) { leases_.reclaim_cpus(lease); }

// ---- reservations and operators ----

void HeadCore::reservation_ended(std::uint64_t ticket, const std::string& creator, const std::string& how) {
  const auto name = reservation_name(ticket);
  for (auto& p : leases_.drop_pending([&](const PendingLease& q) { return q.request.reservation == ticket; }))
    events_.refuse_lease(p.owner, p.owner_lease, "iogrid: cluster " + name + " was " + how, LeaseRefusal::never_fits);
  // Jobs that ran inside it stop, but the one that made it (it learns through its refused requests).
  std::vector<JobRecord*> inside;
  for (const auto& [id, j] : jobs_.all())
    if (j.state == JobState::running && j.reservations.count(ticket) && id != creator) inside.push_back(jobs_.find(id));
  for (auto* j : inside) end_job(*j, JobState::stopped, "its cluster " + name + " was " + how);
  clusters_changed_ = true;
}

std::optional<std::string> HeadCore::admin(OwnerId requester, std::uint64_t request_id, const std::string& who,
                                           const std::string& command, const std::string& args_json) {
  nlohmann::json args;
  try {
    args = nlohmann::json::parse(args_json.empty() ? std::string("{}") : args_json);
  } catch (const std::exception& e) {
    throw core::Error(std::string("iogrid: bad arguments for ") + command + ": " + e.what());
  }
  const auto* o = jobs_.owner(requester);
  const std::string owner = o ? o->job : who;
  if (command == "verify") {
    const std::string only = args.value("node", "");
    const int n = args.value("size", 8192);
    if (n < 16 || n > 32768) throw core::Error("iogrid: --size must be between 16 and 32768");
    const auto batch = verifier_.open_batch(requester, request_id);
    std::size_t started = 0;
    for (std::uint32_t i = 0; i < nodes_.size(); ++i)
      if (nodes_.alive(i) && nodes_[i].liveness == Liveness::heartbeats &&
          (only.empty() || sched_.cluster().node(i).name == only))
        started += start_verification(i, n, batch);
    if (started == 0) {
      verifier_.cancel_batch(batch);
      throw core::Error(only.empty() ? "iogrid: no live node has GPUs to verify"
                                     : "iogrid: no live node named '" + only + "' with GPUs (see iogrid status)");
    }
    verifier_.expect(batch, started);
    return std::nullopt;
  }
  if (command == "tasks") {
    const std::string job = args.value("job", "");
    if (!jobs_.find(job)) throw core::Error("iogrid: no job '" + job + "' (see iogrid status)");
    const auto after = args.value("after_ms", nlohmann::json(0)).is_number() ? args["after_ms"].get<std::int64_t>() : 0;
    const auto limit = args.value("limit", nlohmann::json(5000)).is_number_unsigned() ? args["limit"].get<std::size_t>() : 5000;
    return tasks_.detail(job, after, std::min<std::size_t>(limit, TaskBook::kSpansPerJob))
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (command == "actors") {
    const std::string job = args.value("job", "");
    if (!job.empty() && !jobs_.find(job)) throw core::Error("iogrid: no job '" + job + "' (see iogrid status)");
    const std::string state = args.value("state", "");
    if (!state.empty() && state != "pending" && state != "alive" && state != "restarting" && state != "dead")
      throw core::Error("iogrid: unknown actor state '" + state + "' (pending, alive, restarting or dead)");
    const auto num = [&](const char* k, std::size_t d) {
      return args.value(k, nlohmann::json(d)).is_number_unsigned() ? args[k].get<std::size_t>() : d;
    };
    return tasks_.actors(job, state, args.value("q", ""), num("offset", 0), std::min<std::size_t>(num("limit", 100), 10000))
        .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (command == "market") return market_json(args);
  if (command == "logs") {
    const std::string job = args.value("job", "");
    auto text = logs_.get(job);
    if (!text && !jobs_.find(job)) throw core::Error("iogrid: no job '" + job + "' (see iogrid status)");
    return nlohmann::json{{"job", job}, {"text", text.value_or("")}}.dump(-1, ' ', false,
                                                                         nlohmann::json::error_handler_t::replace);
  }
  for (const auto& e : reservations_.expire()) reservation_ended(e.ticket, e.owner, "expired");
  std::string deleted_owner;
  std::uint64_t deleted = 0;
  if (command == "cluster.delete") {
    deleted = parse_reservation(args.value("id", ""));
    deleted_owner = reservations_.owner(deleted).value_or("");
  }
  auto body = reservations_.admin(command, args, owner);
  if (deleted) reservation_ended(deleted, deleted_owner, "deleted");
  if (command == "cluster.create" || command == "cluster.delete") {
    spdlog::log(spdlog::level::level_enum(info_), "{} from {}: {}", command, who, body.dump());
    clusters_changed_ = true;
    save_books();
    full_pass();
  }
  return body.dump();
}

std::size_t HeadCore::start_verification(std::uint32_t node, int n, std::uint64_t batch) {
  const auto& nd = sched_.cluster().node(node);
  if (!nd.alive || nd.gpus.empty()) return 0;
  for (std::uint32_t d = 0; d < nd.gpus.size(); ++d) events_.send_challenge(node, verifier_.challenge(node, d, n, batch));
  spdlog::log(spdlog::level::level_enum(info_), "verifying the {} GPU(s) of {} (GEMM {}^3)", nd.gpus.size(), nd.name, n);
  return nd.gpus.size();
}

void HeadCore::verify_committed(std::uint32_t node, std::uint64_t id, const std::vector<std::uint8_t>& root, double seconds,
                                const std::string& error) {
  auto c = verifier_.commit(id, node, root, seconds, error);
  if (!c) return;
  if (c->failed) return verification_done(*c->failed);
  events_.send_rows_to_open(node, id, c->rows);
}

void HeadCore::verify_opened(std::uint32_t node, std::uint64_t id, const std::vector<gpu::verify::Prover::Opening>& openings) {
  auto t = verifier_.target(id);
  if (!t || t->first != node || !nodes_.known(node) || t->second >= sched_.cluster().node(node).gpus.size()) return;
  auto done = verifier_.open(id, node, openings, sched_.cluster().node(node).gpus[t->second].model);
  if (done) verification_done(*done);
}

void HeadCore::verification_done(const VerificationDone& v) {
  const auto& verdict = v.verdict;
  if (v.node < sched_.cluster().size() && v.device < sched_.cluster().node(v.node).gpus.size()) {
    auto node = sched_.cluster().node(v.node);
    auto& g = node.gpus[v.device];
    g.verified = verdict.verified;
    if (verdict.verified) g.tflops = verdict.tflops;
    const std::string line = "GPU " + std::to_string(v.device) + " (" + g.model + "): " +
                             (verdict.verified ? "" : "unverified, ") + verdict.reason;
    const double before = node.reputation;
    node.reputation = sched::update_reputation(
        node.reputation, verdict.verified ? sched::Outcome::verification_passed : sched::Outcome::verification_failed);
    // The worker view's verification history and what moved the reputation.
    char moved[64];
    std::snprintf(moved, sizeof moved, "; reputation %.3f -> %.3f", before, node.reputation);
    history_->event(clock_.unix_ms(), "verify", node.name,
                    (verdict.verified ? "passed: " : "failed: ") + line +
                        (verdict.verified ? "; " + std::to_string(verdict.tflops) + " TFLOPS" : std::string()) + moved);
    sched_.cluster().replace(v.node, std::move(node));
    sched_.node_changed();
    save_node(v.node);
    nodes_.set_verification(v.node, v.device, line);
    spdlog::log(spdlog::level::level_enum(info_), "verification of {}: {}", sched_.cluster().node(v.node).name, line);
    if (verdict.verified) full_pass();
  }
  const auto name = v.node < sched_.cluster().size() ? sched_.cluster().node(v.node).name : std::string("?");
  if (auto b = verifier_.record(v, name)) events_.admin_answer(b->requester, b->request_id, true, b->results.dump());
}

// ---- tasks ----

void HeadCore::task_report(OwnerId owner, const std::string& json) {
  const auto* o = jobs_.owner(owner);
  if (!o) return;
  try {
    const auto doc = nlohmann::json::parse(json);
    if (doc.is_object() && doc.contains("checks")) spot_checks(o->job, doc["checks"]);
    if (doc.is_object() && doc.contains("tasks")) tasks_.report(o->job, owner, json);
  } catch (const std::exception& e) {
    if (!task_report_warned_) spdlog::warn("ignoring a malformed task report from {}: {}", o->job, e.what());
    task_report_warned_ = true;
  }
}

void HeadCore::spot_checks(const std::string& job, const nlohmann::json& records) {
  if (!records.is_array()) throw std::invalid_argument("'checks' is not an array");
  const auto* j = jobs_.find(job);
  const std::string user = j ? j->user : std::string();
  // A check may name only providers that ran this job's work: an owner cannot accuse (or vouch for) a node it
  // never used.
  auto worked = [&](const std::string& name) {
    const auto index = sched_.cluster().find(name);
    return j && index && j->nodes_used.count(*index) > 0;
  };
  bool moved = false;  // reputations changed: the scheduler hears it once, after the report
  struct Tell {
    bool& moved;
    sched::Scheduler& s;
    ~Tell() {
      if (moved) s.node_changed();
    }
  } tell{moved, sched_};
  for (const auto& x : records) {
    const auto r = CheckRecord::from_json(x);
    bool named_ok = r.disagreed.empty() || worked(r.disagreed);
    for (const auto& n : r.agreed) named_ok = named_ok && worked(n);
    if (!named_ok) {
      if (!check_report_warned_) spdlog::warn("ignoring a spot check from {} naming a node that ran none of its work", job);
      check_report_warned_ = true;
      continue;
    }
    ++check_verdicts_[sched::to_string(r.verdict)];
    auto credit = [&](const std::string& name, sched::Outcome outcome) {
      auto index = sched_.cluster().find(name);
      if (!index) return 0.0;
      const double before = sched_.cluster().node(*index).reputation;
      leases_.credit(*index, outcome);
      moved = true;
      return before;
    };
    for (const auto& n : r.agreed) {
      credit(n, sched::Outcome::check_passed);
      ++check_tallies_[n].passed;
    }
    if (r.verdict != sched::CheckVerdict::settled && r.verdict != sched::CheckVerdict::unsettled) continue;
    std::string detail;
    if (r.verdict == sched::CheckVerdict::settled) {
      ++check_tallies_[r.disagreed].failed;
      const double before = credit(r.disagreed, sched::Outcome::check_failed);
      double after = before;
      if (auto index = sched_.cluster().find(r.disagreed)) {
        after = sched_.cluster().node(*index).reputation;
        save_node(*index);
      }
      char moved[96];
      std::snprintf(moved, sizeof moved, "; reputation %.3f -> %.3f", before, after);
      detail = "spot check of '" + r.task + "' failed: " + r.agreed.at(0) + " and " + r.agreed.at(1) +
               " agreed on another result" + moved;
      history_->event(clock_.unix_ms(), "check", r.disagreed, detail + " (job " + job + ")");
      // The first catch of a provider is a warning; the rest are in the history and the journal.
      spdlog::log(check_tallies_[r.disagreed].failed == 1 ? spdlog::level::warn : spdlog::level::info, "{}: {} (job {})",
                  r.disagreed, detail, job);
    } else {
      detail = "spot check of '" + r.task + "' unsettled: " + r.why;
      history_->event(clock_.unix_ms(), "job", job, detail);
    }
    if (!journal_) continue;
    JournalEntry e;
    e.kind = "check";
    e.job = job;
    e.user = user;
    e.node = r.verdict == sched::CheckVerdict::settled ? r.disagreed : std::string();
    e.tier.clear();
    e.detail = detail;
    if (auto index = sched_.cluster().find(e.node); index && !sched_.cluster().node(*index).gpus.empty())
      e.gpu_model = sched_.cluster().node(*index).gpus.front().model;
    try {
      journal_->append(std::move(e));
    } catch (const std::exception& ex) {
      spdlog::error("the ledger's journal: {}", ex.what());
    }
  }
}

// ---- stores ----

void HeadCore::kv_put(const std::string& key, std::string value) {
  auto& slot = kv_[key];
  slot = std::move(value);
  if (store_) store_->put_kv(key, slot);
}

std::optional<std::string> HeadCore::kv_get(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return std::nullopt;
  return it->second;
}

void HeadCore::append_log(const std::string& job, const std::string& submission, const std::string& text) {
  if (!job.empty()) logs_.append(job, text);
  else logs_.append_submission(submission, text);
}

// ---- housekeeping ----

void HeadCore::tick() {
  const auto now = clock_.now();
  for (const auto& s : nodes_.silent(now))
    events_.drop_node(s.node, "no heartbeat for " + std::to_string(s.for_how_long.count()) + " ms");
  for (auto n : nodes_.uptime_hours(now)) leases_.credit(n, sched::Outcome::uptime_hour);  // healthy uptime
  if (rejoin_grace_until_ != Clock::time_point{} && now >= rejoin_grace_until_) {
    rejoin_grace_until_ = {};
    refuse_infeasible_pending();
  }
  for (const auto& e : reservations_.expire()) reservation_ended(e.ticket, e.owner, "expired");
  // A full pass each second: capacity that came back without a release (an expired cluster) is used.
  if (leases_.pending() > 0 && now - last_full_pass_ >= std::chrono::seconds(1)) {
    full_pass();
    ask_yields();
  }
  pricing_round(now);
  save_books();
  record_history(now);
  // A job restored from state whose driver never came back.
  for (const auto& id : jobs_.orphans(now, config_.driver_reconnect))
    end_job(*jobs_.find(id), JobState::failed, "its driver did not reconnect after the head restarted");
}

// Cluster totals once per raw interval; the history written each second (open hour buckets every 5 minutes),
// thinned each hour.
void HeadCore::record_history(Clock::time_point now) {
  if (last_totals_ == Clock::time_point{} || now - last_totals_ >= config_.history.raw_interval) {
    last_totals_ = now;
    const auto ms = clock_.unix_ms();
    double alive = 0, gpus = 0, gpus_busy = 0, cpus = 0, cpus_free = 0;
    for (std::uint32_t i = 0; i < sched_.cluster().size(); ++i) {
      const auto& n = sched_.cluster().node(i);
      if (!n.alive) continue;
      alive += 1;
      gpus += double(n.gpus.size());
      for (const auto& g : n.gpus) gpus_busy += 1.0 - double(g.free) / double(sched::kOne);
      cpus += double(n.total.cpus) / double(sched::kOne);
      cpus_free += double(n.available.cpus) / double(sched::kOne);
    }
    history_->record("cluster/nodes_alive", ms, alive);
    history_->record("cluster/gpus", ms, gpus);
    history_->record("cluster/gpus_busy", ms, gpus_busy);
    history_->record("cluster/cpus_used", ms, cpus - cpus_free);
    history_->record("cluster/leases_active", ms, double(leases_.running().size()));
    history_->record("cluster/leases_pending", ms, double(leases_.pending()));
    // Each provider's ledger totals, when they moved: the worker view's GPU-seconds and earnings per day are
    // differences of these running totals (hour buckets keep their maximum for a year).
    for (const auto& e : ledger_.entries()) {
      if (e.kind != "node") continue;
      auto& last = ledger_recorded_[e.name];
      if (last.first == e.gpu_seconds && last.second == e.cost) continue;
      last = {e.gpu_seconds, e.cost};
      history_->record("ledger/" + e.name + "/gpu_seconds", ms, e.gpu_seconds);
      history_->record("ledger/" + e.name + "/earned_usd", ms, e.cost);
    }
  }
  // The history's own thread writes; the head only asks.
  if (now - last_history_flush_ >= std::chrono::seconds(1) || history_->events_pending()) {
    last_history_flush_ = now;
    const bool checkpoint = now - last_history_checkpoint_ >= std::chrono::minutes(5);
    if (checkpoint) last_history_checkpoint_ = now;
    history_->flush_in_background(checkpoint);
  }
  if (now - last_history_compact_ >= std::chrono::hours(1)) {
    last_history_compact_ = now;
    history_->compact_in_background(clock_.unix_ms());
  }
}

}  // namespace iogrid::runtime::head
