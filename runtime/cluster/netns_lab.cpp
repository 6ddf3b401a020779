#include "runtime/cluster/netns_lab.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>

namespace iogrid::runtime::cluster {

namespace {

// Runs a shell command; its output, or throws with it when the command fails.
std::string sh(const std::string& cmd) {
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen((cmd + " 2>&1").c_str(), "r"), pclose);
  if (!p) throw NetnsUnavailable("cannot run: " + cmd);
  std::string out;
  char buf[4096];
  while (auto n = fread(buf, 1, sizeof buf, p.get())) out.append(buf, n);
  int rc = pclose(p.release());
  if (rc != 0) throw NetnsUnavailable("`" + cmd + "` failed: " + out);
  return out;
}

bool pid_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// Labs are named iogns-PID-N-HOST (namespaces) and iogbPIDxN (bridges): remove those whose process is gone.
void remove_stale() {
  std::istringstream ns(sh("ip netns list"));
  for (std::string line; std::getline(ns, line);) {
    auto name = line.substr(0, line.find(' '));
    if (name.rfind("iogns-", 0) != 0) continue;
    if (!pid_alive(std::atol(name.c_str() + 6))) std::system(("ip netns del " + name + " >/dev/null 2>&1").c_str());
  }
  std::istringstream links(sh("ip -o link show type bridge"));
  for (std::string line; std::getline(links, line);) {
    auto at = line.find(": iogb");
    if (at == std::string::npos) continue;
    auto name = line.substr(at + 2, line.find(':', at + 2) - at - 2);
    if (!pid_alive(std::atol(name.c_str() + 4))) std::system(("ip link del " + name + " >/dev/null 2>&1").c_str());
  }
}

std::atomic<int> g_labs{0};

}  // namespace

NetnsLab::NetnsLab() {
  if (::geteuid() != 0) throw NetnsUnavailable("network namespaces need root (CAP_NET_ADMIN); this process runs as uid " + std::to_string(::geteuid()));
  try {
    ip_ = sh("command -v ip");
  } catch (const NetnsUnavailable&) {
    throw NetnsUnavailable("iproute2's `ip` is not installed (scripts/setup installs it)");
  }
  while (!ip_.empty() && (ip_.back() == '\n' || ip_.back() == ' ')) ip_.pop_back();
  remove_stale();
  const long pid = ::getpid();
  const int n = g_labs++ % 10;
  id_ = std::to_string(pid) + "-" + std::to_string(n);
  bridge_ = "iogb" + std::to_string(pid) + "x" + std::to_string(n);
  // A /24 no interface here uses yet.
  const auto used = sh("ip -4 -o addr show");
  for (int attempt = 0; attempt < 256 && prefix_.empty(); ++attempt) {
    auto candidate = "10." + std::to_string(100 + (pid + attempt) % 100) + "." + std::to_string((pid / 100 + n * 7 + attempt) % 250) + ".";
    if (used.find(" " + candidate) == std::string::npos) prefix_ = candidate;
  }
  if (prefix_.empty()) throw NetnsUnavailable("no free 10.x.y.0/24 for a test network");
  gateway_ = prefix_ + "254";
  sh("ip link add " + bridge_ + " type bridge");
  try {
    sh("ip addr add " + gateway_ + "/24 dev " + bridge_);
    sh("ip link set " + bridge_ + " up");
  } catch (...) {
    std::system(("ip link del " + bridge_ + " >/dev/null 2>&1").c_str());
    throw;
  }
}

NetnsLab::~NetnsLab() {
  for (const auto& [name, h] : hosts_) {
    std::system(("ip netns del " + h.ns + " >/dev/null 2>&1").c_str());
    if (!h.router_ns.empty()) std::system(("ip netns del " + h.router_ns + " >/dev/null 2>&1").c_str());
  }
  std::system(("ip link del " + bridge_ + " >/dev/null 2>&1").c_str());
}

const char* to_string(Nat n) {
  switch (n) {
    case Nat::none: return "public";
    case Nat::cone: return "cone NAT";
    case Nat::symmetric: return "symmetric NAT";
    case Nat::firewall: return "firewall";
  }
  return "?";
}

NetnsLab::Host NetnsLab::on_bridge(const std::string& tag) {
  if (next_ > 250) throw std::runtime_error("NetnsLab: at most 250 hosts and routers");
  const auto k = std::to_string(next_++);
  Host h{"iogns-" + id_ + "-" + tag + k, "", prefix_ + k, "", ""};
  h.veth = "iv" + std::to_string(::getpid() % 100000) + bridge_.substr(bridge_.size() - 1) + tag + k;  // <= 15 chars
  sh("ip netns add " + h.ns);
  return h;
}

std::string NetnsLab::host(const std::string& name, Nat nat) {
  if (auto it = hosts_.find(name); it != hosts_.end()) return it->second.address;
  if (nat != Nat::none && std::system("command -v nft >/dev/null 2>&1") != 0)
    throw NetnsUnavailable("nftables' `nft` is not installed (scripts/setup installs it)");
  const bool routed = nat == Nat::cone || nat == Nat::symmetric;
  Host h = on_bridge(routed ? "r" : "h");
  // The namespace on the bridge: the host itself, or its router.
  const std::string outer = h.ns;
  hosts_[name] = h;  // removed by the destructor from here on
  sh("ip link add " + h.veth + " type veth peer name eth0 netns " + outer);
  sh("ip link set " + h.veth + " master " + bridge_ + " up");
  sh("ip -n " + outer + " addr add " + h.address + "/24 dev eth0");
  sh("ip -n " + outer + " link set eth0 up");
  sh("ip -n " + outer + " link set lo up");
  auto nft = [](const std::string& ns, const std::string& rules) {
    sh("ip netns exec " + ns + " nft -f - <<'EOF'\n" + rules + "\nEOF\n");  // sh() appends 2>&1: a line of its own
  };
  if (nat == Nat::firewall) {
    nft(outer,
        "table inet home {\n  chain input {\n    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n    iifname \"lo\" accept\n  }\n}");
  }
  if (!routed) {
    hosts_[name].public_address = h.address;
    return h.address;
  }
  // The home: a private network behind the router, which forwards and rewrites what leaves it.
  auto& home = hosts_[name];
  home.router_ns = outer;
  home.public_address = h.address;
  home.ns = outer.substr(0, outer.rfind('-') + 1) + "h" + h.address.substr(h.address.rfind('.') + 1);
  home.address = "192.168.1.2";
  sh("ip netns add " + home.ns);
  sh("ip link add lan0 netns " + outer + " type veth peer name eth0 netns " + home.ns);
  sh("ip -n " + outer + " addr add 192.168.1.1/24 dev lan0");
  sh("ip -n " + outer + " link set lan0 up");
  sh("ip -n " + home.ns + " addr add 192.168.1.2/24 dev eth0");
  sh("ip -n " + home.ns + " link set eth0 up");
  sh("ip -n " + home.ns + " link set lo up");
  sh("ip -n " + home.ns + " route add default via 192.168.1.1");
  sh("ip netns exec " + outer + " sysctl -qw net.ipv4.ip_forward=1");
  // Inbound: only replies to what the home started (conntrack); nothing is forwarded to it unasked.
  nft(outer, std::string("table ip home {\n  chain post {\n    type nat hook postrouting priority 100; policy accept;\n"
                         "    oifname \"eth0\" masquerade") +
                 (nat == Nat::symmetric ? " fully-random" : "") +
                 "\n  }\n  chain forward {\n    type filter hook forward priority 0; policy drop;\n"
                 "    iifname \"lan0\" accept\n    ct state established,related accept\n  }\n"
                 // What arrives unasked for the router itself is dropped, not answered with a reset (as most
                 // home routers do): a reset would also leave a conntrack entry that takes the port the home's
                 // own SYN needs a moment later, and no two SYNs cross on a link without latency.
                 "  chain input {\n    type filter hook input priority 0; policy accept;\n"
                 "    iifname \"eth0\" ct state new drop\n  }\n}");
  return home.address;
}

std::string NetnsLab::public_address(const std::string& name) {
  host(name);
  return hosts_.at(name).public_address;
}

std::vector<std::string> NetnsLab::exec_prefix(const std::string& name) {
  host(name);
  return {ip_, "netns", "exec", hosts_.at(name).ns};
}

std::string NetnsLab::namespace_path(const std::string& name) {
  host(name);
  return "/var/run/netns/" + hosts_.at(name).ns;
}

void NetnsLab::set_link(const std::string& name, bool up) {
  host(name);  // a NATed host's veth on the bridge is its router's: cutting it cuts the home off
  sh("ip link set " + hosts_.at(name).veth + (up ? " up" : " down"));
}

}  // namespace iogrid::runtime::cluster
