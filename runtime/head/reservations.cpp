#include "runtime/head/reservations.hpp"

#include <cmath>
#include <set>

#include "iogrid/core/errors.hpp"
#include "scheduler/feasibility.hpp"
#include "scheduler/placement_group.hpp"

namespace iogrid::runtime::head {

std::string reservation_name(std::uint64_t ticket) { return "c-" + std::to_string(ticket); }

std::uint64_t parse_reservation(const std::string& id) {
  std::string digits = id.rfind("c-", 0) == 0 ? id.substr(2) : id;
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
    throw core::Error("iogrid: '" + id + "' is not a cluster id (they look like c-7; see iogrid cluster list)");
  return std::stoull(digits);
}

namespace {

double number(const nlohmann::json& args, const char* key, double fallback) {
  if (!args.contains(key) || args[key].is_null()) return fallback;
  if (!args[key].is_number()) throw core::Error(std::string("iogrid: ") + key + " must be a number");
  double v = args[key].get<double>();
  if (!std::isfinite(v) || v < 0) throw core::Error(std::string("iogrid: ") + key + " must be a non-negative number");
  return v;
}

std::string text(const nlohmann::json& args, const char* key) {
  if (!args.contains(key) || args[key].is_null()) return {};
  if (!args[key].is_string()) throw core::Error(std::string("iogrid: ") + key + " must be a string");
  return args[key].get<std::string>();
}

}  // namespace

void ReservationBook::charge(sched::Ledger& to, std::uint64_t ticket, const Record& r, Clock::time_point until) const {
  const auto* g = sched_.gang(ticket);
  if (!g) return;
  const double secs = std::chrono::duration<double>(until - r.created).count();
  for (const auto& a : g->bundles) {
    const auto& n = sched_.cluster().node(a.node);
    to.reserved(reservation_name(ticket), n.name, sched::gpu_count(a), secs, r.price_on(n));
  }
}

nlohmann::json ReservationBook::describe(std::uint64_t ticket, const Record& r) const {
  nlohmann::json j;
  j["id"] = reservation_name(ticket);
  j["name"] = r.name;
  j["gpus"] = r.gpus;
  j["gpu_model"] = r.gpu_model;
  if (const auto* g = sched_.gang(ticket)) {  // bundle k is GPU k of the reservation (TaskOptions::bundle)
    auto bundles = nlohmann::json::array();
    for (const auto& a : g->bundles) bundles.push_back(sched_.cluster().node(a.node).name);
    j["bundles"] = bundles;
  }
  j["owner"] = r.owner;
  const auto now = clock_.now();
  j["age_s"] = std::chrono::duration<double>(now - r.created).count();
  j["expires_in_s"] = r.expires == r.created ? nlohmann::json(nullptr)
                                              : nlohmann::json(std::chrono::duration<double>(r.expires - now).count());
  const auto* g = sched_.gang(ticket);
  double price = 0;
  std::set<std::string> regions;
  nlohmann::json nodes = nlohmann::json::array();
  std::map<std::string, int> per_node;
  std::map<std::string, std::string> models;
  if (g) {
    for (const auto& a : g->bundles) {
      const auto& n = sched_.cluster().node(a.node);
      for (const auto& [d, f] : a.gpus) {
        price += r.price_on(n) * double(f) / double(sched::kOne);
        models[n.name] = d < n.gpus.size() ? n.gpus[d].model : "";
        per_node[n.name] += 1;
      }
      regions.insert(n.region());
    }
  }
  for (const auto& [name, count] : per_node) nodes.push_back({{"node", name}, {"gpus", count}, {"model", models[name]}});
  j["nodes"] = nodes;
  j["region"] = regions.size() == 1 ? *regions.begin() : std::string(regions.empty() ? "" : "several");
  j["price_per_hour"] = price;
  j["tier"] = r.tier;
  j["cost_so_far"] = price * std::chrono::duration<double>(now - r.created).count() / 3600.0;
  return j;
}

nlohmann::json ReservationBook::create(const nlohmann::json& args, const std::string& owner) {
  const double gpus = number(args, "gpus", 0);
  if (gpus < 1 || std::abs(gpus - std::round(gpus)) > 1e-9)
    throw core::Error("iogrid: a cluster needs a whole number of GPUs (--gpus N, N >= 1)");
  Record r;
  r.gpus = static_cast<int>(std::lround(gpus));
  r.gpu_model = text(args, "gpu_model");
  r.region = text(args, "region");
  r.max_price = number(args, "max_price", 0);
  r.min_reputation = number(args, "min_reputation", 0);
  if (r.min_reputation > 1) throw core::Error("iogrid: min_reputation is between 0 and 1");
  r.name = text(args, "name");
  r.owner = owner;
  const double duration = number(args, "duration_s", 0);
  const double cpus_per_gpu = number(args, "cpus_per_gpu", 2);
  const bool any_region = args.contains("any_region") && args["any_region"].is_boolean() && args["any_region"].get<bool>();

  sched::GangRequest g;
  sched::ResourceRequest b;
  b.gpus = sched::kOne;
  b.cpus = sched::to_milli(cpus_per_gpu);
  b.gpu_models = sched::split_models(r.gpu_model);
  b.max_price = r.max_price;
  b.min_reputation = r.min_reputation;
  if (!r.region.empty()) b.labels[sched::kRegionLabel] = r.region;
  if (const auto tier = text(args, "tier"); !tier.empty()) {
    const auto t = sched::parse_tier(tier);
    if (!t) throw core::Error("iogrid: tier is spot, standard or urgent, got '" + tier + "'");
    b.tier = *t;
    b.priority = sched::tier_rule(*t).priority;
    r.tier = sched::to_string(*t);
  }
  g.bundles.assign(static_cast<std::size_t>(r.gpus), b);
  try {
    g.strategy = sched::parse_strategy(text(args, "strategy").empty() ? "pack" : text(args, "strategy"));
  } catch (const std::invalid_argument& e) {
    throw core::Error(std::string("iogrid: ") + e.what());
  }
  g.same_region = !any_region && r.region.empty();
  auto grant = sched_.reserve_now("reservation:" + owner, g);
  if (!grant) {
    // Same region is a preference when no region was named: try any region before refusing.
    if (g.same_region) {
      g.same_region = false;
      grant = sched_.reserve_now("reservation:" + owner, g);
    }
    if (!grant)
      throw core::Error("iogrid: cannot reserve " + std::to_string(r.gpus) + " GPU(s)" +
                  (r.gpu_model.empty() ? "" : " of " + r.gpu_model) + (r.region.empty() ? "" : " in " + r.region) + ": " +
                  sched::explain_unplaced(sched_.cluster(), g));
  }
  r.created = clock_.now();
  r.expires = duration > 0 ? r.created + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration))
                           : r.created;
  r.created_unix_ms = clock_.unix_ms();
  r.expires_unix_ms = duration > 0 ? r.created_unix_ms + static_cast<std::int64_t>(duration * 1000) : 0;
  auto ticket = grant->ticket;
  if (r.name.empty()) r.name = reservation_name(ticket);
  // Each node's price is locked now: its market's posted price x the tier (what a quote said).
  if (const auto* g = sched_.gang(ticket))
    for (const auto& a : g->bundles) r.prices[sched_.cluster().node(a.node).name] = sched::pay_price(sched_.cluster().node(a.node), b);
  live_[ticket] = r;
  return describe(ticket, r);
}

bool ReservationBook::remove(std::uint64_t ticket) {
  auto it = live_.find(ticket);
  if (it == live_.end()) return false;
  charge(ledger_, ticket, it->second, clock_.now());
  sched_.cancel(ticket);
  live_.erase(it);
  return true;
}

std::vector<ReservationBook::Ended> ReservationBook::expire() {
  std::vector<Ended> out;
  const auto now = clock_.now();
  for (const auto& [t, r] : live_)
    if (r.expires != r.created && r.expires <= now) out.push_back(Ended{t, r.owner});
  for (const auto& e : out) remove(e.ticket);
  return out;
}

std::optional<std::string> ReservationBook::owner(std::uint64_t ticket) const {
  auto it = live_.find(ticket);
  if (it == live_.end()) return std::nullopt;
  return it->second.owner;
}

std::string ReservationBook::save() const {
  auto out = nlohmann::json::array();
  for (const auto& [t, r] : live_) {
    const auto* g = sched_.gang(t);
    if (!g) continue;
    auto bundles = nlohmann::json::array();
    for (const auto& a : g->bundles) {
      auto gpus = nlohmann::json::array();
      for (const auto& [d, f] : a.gpus) gpus.push_back({d, f});
      bundles.push_back({{"node", a.node}, {"cpus", a.cpus}, {"memory_mib", a.memory_mib}, {"custom", a.custom}, {"gpus", gpus}});
    }
    out.push_back({{"ticket", t},
                   {"name", r.name},
                   {"gpus", r.gpus},
                   {"gpu_model", r.gpu_model},
                   {"region", r.region},
                   {"max_price", r.max_price},
                   {"min_reputation", r.min_reputation},
                   {"owner", r.owner},
                   {"created_unix_ms", r.created_unix_ms},
                   {"expires_unix_ms", r.expires_unix_ms},
                   {"tier", r.tier},
                   {"prices", r.prices},
                   {"bundles", bundles}});
  }
  return out.dump();
}

void ReservationBook::load(const std::string& text) {
  if (text.empty()) return;
  try {
    const auto now = clock_.now();
    const auto wall = clock_.unix_ms();
    for (const auto& j : nlohmann::json::parse(text)) {
      Record r;
      r.name = j.at("name").get<std::string>();
      r.gpus = j.at("gpus").get<int>();
      r.gpu_model = j.at("gpu_model").get<std::string>();
      r.region = j.at("region").get<std::string>();
      r.max_price = j.at("max_price").get<double>();
      r.min_reputation = j.at("min_reputation").get<double>();
      r.owner = j.at("owner").get<std::string>();
      r.created_unix_ms = j.at("created_unix_ms").get<std::int64_t>();
      r.expires_unix_ms = j.at("expires_unix_ms").get<std::int64_t>();
      r.tier = j.value("tier", std::string("standard"));
      r.prices = j.value("prices", std::map<std::string, double>());
      r.created = now - std::chrono::milliseconds(std::max<std::int64_t>(0, wall - r.created_unix_ms));
      r.expires = r.expires_unix_ms ? now + std::chrono::milliseconds(r.expires_unix_ms - wall) : r.created;
      if (r.expires_unix_ms && r.expires == r.created) r.expires += std::chrono::milliseconds(1);
      std::vector<sched::Allocation> bundles;
      for (const auto& b : j.at("bundles")) {
        sched::Allocation a;
        a.node = b.at("node").get<std::uint32_t>();
        if (a.node >= sched_.cluster().size()) throw core::Error("a bundle names node " + std::to_string(a.node) + ", unknown");
        a.cpus = b.at("cpus").get<sched::Milli>();
        a.memory_mib = b.at("memory_mib").get<sched::Milli>();
        a.custom = b.at("custom").get<std::map<std::string, sched::Milli>>();
        for (const auto& g : b.at("gpus")) a.gpus.emplace_back(g.at(0).get<std::uint32_t>(), g.at(1).get<sched::Milli>());
        bundles.push_back(std::move(a));
      }
      const auto ticket = j.at("ticket").get<std::uint64_t>();
      sched_.adopt_gang(ticket, "reservation:" + r.owner, bundles);
      live_[ticket] = r;
    }
  } catch (const nlohmann::json::exception& e) {
    throw core::Error(std::string("iogrid: the saved clusters are unreadable: ") + e.what());
  }
}

nlohmann::json ReservationBook::admin(const std::string& command, const nlohmann::json& args, const std::string& owner) {
  if (command == "cluster.create") return create(args, owner);
  if (command == "cluster.list") {
    auto out = nlohmann::json::array();
    for (const auto& [t, r] : live_) out.push_back(describe(t, r));
    return out;
  }
  if (command == "cluster.delete") {
    auto id = text(args, "id");
    auto t = parse_reservation(id);
    if (!remove(t)) throw core::Error("iogrid: no cluster " + id + " (see iogrid cluster list)");
    return {{"deleted", reservation_name(t)}};
  }
  if (command == "ledger") {
    // Running reservations are charged up to now in the answer (the ledger itself is charged when they end).
    sched::Ledger view = sched::Ledger::load(ledger_.save(), ledger_.fee_fraction());
    const auto now = clock_.now();
    for (const auto& [t, r] : live_) charge(view, t, r, now);
    auto out = nlohmann::json::array();
    for (const auto& e : view.entries())
      out.push_back({{"kind", e.kind}, {"name", e.name}, {"gpu_seconds", e.gpu_seconds}, {"cost", e.cost}});
    return out;
  }
  throw core::Error("iogrid: unknown admin command '" + command + "'");
}

}  // namespace iogrid::runtime::head
