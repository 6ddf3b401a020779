// JobTable: the jobs a head has seen and the owners that act for them. An owner is whoever asks the head
// for leases: a job's driver, or a worker process submitting nested tasks for the job. OwnerIds are the
// shell's (a connection in cluster mode, the one driver of an embedded cluster); the table never
// interprets them.
// Rules:
// - A job starts when a driver registers (ids job-1, job-2, ... never reused, even across head restarts with
//   --state) and ends once: finished (its driver said so), failed (its driver vanished, or never came back
//   after a head restart) or stopped (an operator, or the end of its reservation). Nothing revives it.
// - A driver may come back to a running job (after a dropped connection or a head restart): resume.
// - A job restored from the head's state with no driver is orphaned; it fails once `driver_reconnect` has
//   passed without its driver (orphans() lists those due).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/transport/reachability.hpp"
#include "runtime/head/clock.hpp"

namespace iogrid::runtime::head {

using OwnerId = std::uint64_t;  // 0: nobody

enum class JobState : std::uint8_t { running, finished, failed, stopped };
const char* to_string(JobState s);
JobState job_state_from(const std::string& s);  // unknown text: failed

struct JobRecord {
  std::string id;
  OwnerId driver_owner = 0;           // the driver's owner id while connected, 0 otherwise
  std::string driver;                 // who started it ("name@address")
  std::string code_hash;
  std::string owner_host;             // where its driver listens for workers
  std::uint16_t owner_port = 0;
  transport::Reachability driver_reach;  // can workers dial its driver (the head dials it back)
  JobState state = JobState::running;
  std::uint64_t leases_granted = 0;
  std::uint32_t active_leases = 0;
  std::int64_t started_unix_ms = 0, ended_unix_ms = 0;
  Clock::time_point orphaned_since{};  // restored from state, no driver yet
  std::set<std::uint64_t> reservations;  // reservations its leases ran in
  std::set<std::uint32_t> nodes_used;    // nodes its leases ran on (since this head started): spot checks may
                                         // name only these
  std::string user = "default";
  double weight = 1;
};

struct Owner {
  std::string job;
  std::string host;
  std::uint16_t port = 0;
};

class JobTable {
 public:
  // A new job under the next id.
  JobRecord& create(JobRecord j);
  // A job known from the head's state (its driver may resume it).
  JobRecord& restore(JobRecord j, Clock::time_point now);
  JobRecord* find(const std::string& id);
  const JobRecord* find(const std::string& id) const;
  const std::map<std::string, JobRecord>& all() const { return jobs_; }
  // Moves a running job to `to`; false when it had already ended.
  bool end(JobRecord& j, JobState to, std::int64_t unix_ms);
  // Running jobs without a driver for longer than `grace`.
  std::vector<std::string> orphans(Clock::time_point now, std::chrono::milliseconds grace) const;

  void set_counter(std::uint64_t next) { counter_ = next; }
  std::uint64_t counter() const { return counter_; }

  // Owners.
  void add_owner(OwnerId id, Owner o) { owners_[id] = std::move(o); }
  const Owner* owner(OwnerId id) const;
  std::optional<Owner> remove_owner(OwnerId id);
  const std::unordered_map<OwnerId, Owner>& owners() const { return owners_; }

 private:
  std::map<std::string, JobRecord> jobs_;
  std::unordered_map<OwnerId, Owner> owners_;
  std::uint64_t counter_ = 0;
};

}  // namespace iogrid::runtime::head
