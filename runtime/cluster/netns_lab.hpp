// NetnsLab: hosts as Linux network namespaces on one bridge, for multi-process tests that cross a real network
// hop on one machine. Each host is a namespace with a veth pair on the lab's bridge and its own address in a
// private /24 (10.A.B.1, .2, ...); the calling process stays in the root namespace and reaches every host
// through the bridge's address (10.A.B.254), so drivers and CLI commands run there see the hosts as remote.
// Needs root (CAP_NET_ADMIN) and iproute2; when either is missing the constructor throws NetnsUnavailable
// saying which. Everything made is removed by the destructor; labs left by a killed process (their names carry
// its pid) are removed by the next lab made on the machine.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace iogrid::runtime::cluster {

struct NetnsUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class NetnsLab {
 public:
  NetnsLab();
  ~NetnsLab();
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  // The host called `name` (made on first use): its address.
  std::string host(const std::string& name);
  // The arguments that run a program inside that host's namespace (put before its argv).
  std::vector<std::string> exec_prefix(const std::string& name);
  // The root namespace's address on the bridge (where drivers and commands of this process are seen from).
  const std::string& gateway() const { return gateway_; }
  // Cuts a host off the bridge (its link down) or puts it back: a network partition, not a dead process.
  void set_link(const std::string& name, bool up);

 private:
  std::string ip_, id_, prefix_, bridge_, gateway_;
  struct Host {
    std::string ns, veth, address;
  };
  std::map<std::string, Host> hosts_;
};

}  // namespace iogrid::runtime::cluster
