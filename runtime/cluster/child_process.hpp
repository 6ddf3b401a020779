// ChildProcess: a program started with arguments and extra environment, its output (stdout and stderr)
// captured to a file, killed (SIGKILL) and reaped when the object goes away, so no test or benchmark leaves
// one behind. Used by the local-cluster harness (local_cluster.hpp) and by tests that run programs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace iogrid::runtime::cluster {

class ChildProcess {
 public:
  // argv[0] is the program's path. Throws std::runtime_error when it cannot be started.
  ChildProcess(std::vector<std::string> argv, std::map<std::string, std::string> env, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `sig`; SIGKILL also waits for the process to be gone.
  void kill(int sig);
  // Waits for exit; returns the exit code (128 + signal when killed), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::hours(1));
  std::string output() const;
  const std::string& log_path() const { return log_; }
  // Waits until the output contains `text`; false on timeout or when the process exits first.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

// Polls `pred` every 50 ms until it holds or the timeout passes; returns its last answer.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

}  // namespace iogrid::runtime::cluster
