// LogStore: the output of each job (its driver when started by `iogrid job submit`, and its workers), the
// last 4 MiB per job in memory and, with a state directory, appended to <state>/logs/<job>.log so a restarted
// head still serves it. Output that arrives for a submission before its driver registered the job is kept
// under the submission id and moved to the job when it registers.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace iogrid::runtime::head {

class LogStore {
 public:
  static constexpr std::size_t kMaxPerJob = 4u << 20;
  explicit LogStore(std::filesystem::path dir = {}) : dir_(std::move(dir)) {}

  void append(const std::string& job, const std::string& text);
  // Output for a submission id: to its job when known, else kept until the job registers.
  void append_submission(const std::string& submission, const std::string& text);
  // A job registered under `submission`: what arrived before moves to it.
  void bind_submission(const std::string& submission, const std::string& job);
  std::optional<std::string> get(const std::string& job) const;
  // Reads a job's file back after a restart.
  void restore(const std::string& job);

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::string> logs_;
  std::map<std::string, std::string> early_;        // submission id -> output before its job existed
  std::map<std::string, std::string> submissions_;  // submission id -> job id
};

}  // namespace iogrid::runtime::head
