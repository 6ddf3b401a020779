#include "runtime/head/job_table.hpp"

namespace iogrid::runtime::head {

const char* to_string(JobState s) {
  switch (s) {
    case JobState::running: return "running";
    case JobState::finished: return "finished";
    case JobState::failed: return "failed";
    case JobState::stopped: return "stopped";
  }
  return "failed";
}

JobState job_state_from(const std::string& s) {
  for (auto st : {JobState::running, JobState::finished, JobState::failed, JobState::stopped})
    if (s == to_string(st)) return st;
  return JobState::failed;
}

JobRecord& JobTable::create(JobRecord j) {
  j.id = "job-" + std::to_string(++counter_);
  j.state = JobState::running;
  auto id = j.id;
  return jobs_[id] = std::move(j);
}

JobRecord& JobTable::restore(JobRecord j, Clock::time_point now) {
  j.driver_owner = 0;
  j.orphaned_since = now;
  auto id = j.id;
  return jobs_[id] = std::move(j);
}

JobRecord* JobTable::find(const std::string& id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

const JobRecord* JobTable::find(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

bool JobTable::end(JobRecord& j, JobState to, std::int64_t unix_ms) {
  if (j.state != JobState::running || to == JobState::running) return false;
  j.state = to;
  j.ended_unix_ms = unix_ms;
  return true;
}

std::vector<std::string> JobTable::orphans(Clock::time_point now, std::chrono::milliseconds grace) const {
  std::vector<std::string> out;
  for (const auto& [id, j] : jobs_)
    if (j.state == JobState::running && j.driver_owner == 0 && j.orphaned_since != Clock::time_point{} &&
        now - j.orphaned_since > grace) out.push_back(id);
  return out;
}

const Owner* JobTable::owner(OwnerId id) const {
  auto it = owners_.find(id);
  return it == owners_.end() ? nullptr : &it->second;
}

std::optional<Owner> JobTable::remove_owner(OwnerId id) {
  auto it = owners_.find(id);
  if (it == owners_.end()) return std::nullopt;
  auto o = std::move(it->second);
  owners_.erase(it);
  return o;
}

}  // namespace iogrid::runtime::head
