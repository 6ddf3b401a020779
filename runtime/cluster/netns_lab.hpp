// NetnsLab: hosts as Linux network namespaces on one bridge, for multi-process tests that cross a real network
// hop on one machine. Each host is a namespace with a veth pair on the lab's bridge and its own address in a
// private /24 (10.A.B.1, .2, ...); the calling process stays in the root namespace and reaches every host
// through the bridge's address (10.A.B.254), so drivers and CLI commands run there see the hosts as remote.
// A host may sit behind a home router instead (`Nat`): then it lives in its own private network
// (192.168.1.0/24, the same in every home, as in real homes) behind a router namespace on the bridge that
// rewrites its connections with nftables: `cone` masquerades (Linux keeps the source port where it can: the
// same mapping for every destination, replies only from where it sent), `symmetric` masquerades with
// `fully-random` (a new random port per destination), `firewall` puts the host on the bridge but drops every
// connection it did not start. Nobody can dial a host behind any of the three. Routers drop what arrives
// unasked for themselves (as most home routers do) rather than answer it with a reset. Hole punching
// (transport/punch.hpp) gets through a cone NAT and the firewall (both let in a SYN that matches one their host
// sent), never through the symmetric NAT.
// Needs root (CAP_NET_ADMIN) and iproute2 (nftables for NATs); when one is missing the constructor (or the first
// NATed host) throws NetnsUnavailable saying which. Everything made is removed by the destructor; labs left by a killed process (their names carry
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

enum class Nat { none, cone, symmetric, firewall };
const char* to_string(Nat n);

class NetnsLab {
 public:
  NetnsLab();
  ~NetnsLab();
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  // The host called `name` (made on first use, behind `nat`): its own address (a private one behind a router).
  std::string host(const std::string& name, Nat nat = Nat::none);
  // The address the others see `name` from: its router's for a host behind a NAT, else its own.
  std::string public_address(const std::string& name);
  // The arguments that run a program inside that host's namespace (put before its argv).
  std::vector<std::string> exec_prefix(const std::string& name);
  // The host's namespace file (for setns: a thread of this process can listen inside the host).
  std::string namespace_path(const std::string& name);
  // The root namespace's address on the bridge (where drivers and commands of this process are seen from).
  const std::string& gateway() const { return gateway_; }
  // Cuts a host off the bridge (its link down) or puts it back: a network partition, not a dead process.
  void set_link(const std::string& name, bool up);

 private:
  std::string ip_, id_, prefix_, bridge_, gateway_;
  struct Host {
    std::string ns, veth, address;
    std::string router_ns, public_address;  // behind a NAT: the router's namespace and bridge address
  };
  std::map<std::string, Host> hosts_;
  int next_ = 1;  // the next address on the bridge
  // A namespace with a veth on the bridge at the next address: its namespace, veth and address.
  Host on_bridge(const std::string& tag);
};

}  // namespace iogrid::runtime::cluster
