// A head and nodes started as child processes of the benchmark (this same executable, `iogrid head|node`),
// on 127.0.0.1 with a port chosen at run time and a private token; stopped when the object goes away.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace iogrid::bench {

class LocalDaemons {
 public:
  explicit LocalDaemons(std::string work_dir);
  ~LocalDaemons();
  LocalDaemons(const LocalDaemons&) = delete;
  LocalDaemons& operator=(const LocalDaemons&) = delete;

  // Starts a node; returns its pid.
  pid_t add_node(const std::string& name, double cpus);
  const std::string& address() const { return address_; }
  const std::string& token_file() const { return token_file_; }
  pid_t spawn(const std::vector<std::string>& args, const std::string& log);

 private:
  std::string dir_, token_file_, address_;
  std::vector<pid_t> pids_;
};

}  // namespace iogrid::bench
