// Reservations, called clusters by users (`iogrid cluster create|list|delete`, iogrid::create_cluster): a set
// of GPUs reserved as one gang for a while; jobs and tasks submitted into a reservation run only on it.
// The head core (head_core.hpp) keeps one ReservationBook next to its scheduler and answers the admin
// commands through it, so both modes behave alike:
//   cluster.create {gpus, gpu_model, region, max_price, min_reputation, duration_s, cpus_per_gpu, name,
//                   any_region, strategy}          -> the reservation, or an error naming the failed constraint and the
//                                           closest offer
//   cluster.list {}                      -> every live reservation
//   cluster.delete {id}                  -> {deleted: id}
//   ledger {}                            -> GPU-seconds and cost per job, reservation and provider node
// Rules: a reservation is placed at once or refused (never queued); its bundles are one GPU each (with
// cpus_per_gpu CPUs), placed by `strategy` (default pack: as few nodes as possible), all in one region unless
// any_region; work may target one bundle (TaskOptions::bundle) or any; it is charged
// for every reserved GPU from creation until deletion or expiry (see scheduler/ledger.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/head/clock.hpp"
#include "scheduler/ledger.hpp"
#include "scheduler/scheduler.hpp"

namespace iogrid::runtime::head {

// "c-7" <-> 7 (the gang's scheduler ticket).
std::string reservation_name(std::uint64_t ticket);
std::uint64_t parse_reservation(const std::string& id);  // throws iogrid::Error on a malformed id

class ReservationBook {
 public:
  ReservationBook(sched::Scheduler& s, sched::Ledger& l, HeadClock clock = {}) : sched_(s), ledger_(l), clock_(std::move(clock)) {}

  // Runs one admin command (see the header); throws iogrid::Error with a user-facing message on bad input or
  // a reservation that cannot be met. `owner` names who asked (a job id, or "cli").
  nlohmann::json admin(const std::string& command, const nlohmann::json& args, const std::string& owner);
  // Ends reservations whose time is up; returns them (the head stops the jobs running inside).
  struct Ended {
    std::uint64_t ticket = 0;
    std::string owner;  // who created it
  };
  std::vector<Ended> expire();
  // Who created a live reservation (a job id, or the operator's name).
  std::optional<std::string> owner(std::uint64_t ticket) const;
  // Ends one reservation and charges the ledger (delete and expiry).
  bool remove(std::uint64_t ticket);
  bool exists(std::uint64_t ticket) const { return live_.count(ticket) > 0; }

  // The head's state: every live reservation with its placement, as JSON text; load() takes them back after a
  // restart (their gangs are adopted by the scheduler; nodes reserve their bundles again as they rejoin).
  std::string save() const;
  void load(const std::string& text);  // throws iogrid::Error on malformed text

 private:
  struct Record {
    std::string name;
    int gpus = 0;
    std::string gpu_model, region;
    double max_price = 0, min_reputation = 0;
    Clock::time_point created, expires;  // expires == created: never
    std::int64_t created_unix_ms = 0, expires_unix_ms = 0;  // the same on the wall clock, for the state
    std::string owner;
    std::string tier = "standard";
    std::map<std::string, double> prices;  // per node: the price per GPU-hour locked when it was made (pay_price)
    double price_on(const sched::Node& n) const {
      auto it = prices.find(n.name);
      return it != prices.end() ? it->second : n.price_per_gpu_hour;
    }
  };
  nlohmann::json describe(std::uint64_t ticket, const Record& r) const;
  nlohmann::json create(const nlohmann::json& args, const std::string& owner);
  // Charges reservation `ticket` from its creation until `until` to `to`.
  void charge(sched::Ledger& to, std::uint64_t ticket, const Record& r, Clock::time_point until) const;

  sched::Scheduler& sched_;
  sched::Ledger& ledger_;
  HeadClock clock_;
  std::map<std::uint64_t, Record> live_;
};

}  // namespace iogrid::runtime::head
