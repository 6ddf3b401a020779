// iogrid bench net: connections across NATs (issue: GPUs behind NAT). A head and one 2-CPU node on a lab
// network of namespaces (runtime/cluster/netns_lab.hpp, as root), and the same driver program run twice: on the
// lab's network, where the node's workers dial it directly, and at home behind a cone NAT, where they reach it
// through the head's relay (runtime/cluster/relay_server.hpp).
//   net_direct_roundtrip_us / net_relayed_roundtrip_us: the median of N sequential empty tasks (submit, run on
//     the node's worker, result back), after a warm-up;
//   relayed_vs_direct_roundtrip_ratio: the two from the same run (target <= 2).
// Each driver is `iogrid bench net-driver N` (this executable), which prints "NET median_us=M p99_us=P".
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iogrid/iogrid.hpp>
#include <iostream>

#include "bench/report.hpp"
#include "runtime/cluster/local_cluster.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int net_empty(int x) { return x; }
IOGRID_REMOTE(net_empty);

}  // namespace

namespace iogrid::bench {

int run_net_driver(int n) {
  iogrid::init();  // IOGRID_ADDRESS / IOGRID_TOKEN_FILE from the environment
  for (int i = 0; i < 50; ++i)
    if (iogrid::get(iogrid::task(net_empty).remote(i), 60s) != i) throw std::runtime_error("a wrong result");
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (iogrid::get(iogrid::task(net_empty).remote(i), 60s) != i) throw std::runtime_error("a wrong result");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  iogrid::shutdown();
  std::cout << "NET median_us=" << us[us.size() / 2] << " p99_us=" << us[us.size() * 99 / 100] << std::endl;
  return 0;
}

int run_net(const Options& o) {
  auto wanted = selection(o, "net", {"net_direct_roundtrip_us", "net_relayed_roundtrip_us", "relayed_vs_direct_roundtrip_ratio"});
  using runtime::cluster::Nat;
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::unique_ptr<runtime::cluster::LocalCluster> c;
  try {
    c = std::make_unique<runtime::cluster::LocalCluster>(runtime::cluster::LocalClusterOptions{
        .iogrid = self, .state = false, .log_level = "warn", .prefix = "iogrid-bench-net", .netns = true});
  } catch (const runtime::cluster::NetnsUnavailable& e) {
    std::cerr << "iogrid bench net needs network namespaces: " << e.what() << "\n";
    return 77;
  }
  c->add_node("net-1", {"--num-cpus", "2"});
  if (!c->wait_nodes(1)) throw std::runtime_error("the node did not join:\n" + c->logs());
  const int n = std::max(100, static_cast<int>(2000 * o.seconds));
  auto run = [&](runtime::cluster::ChildProcess& d, const std::string& what) {
    if (d.wait(std::chrono::minutes(10)) != 0) throw std::runtime_error(what + " failed:\n" + d.output() + "\n" + c->logs());
    auto r = parse_tagged_line(d.output(), "NET");
    if (r.empty()) throw std::runtime_error(what + " printed no result:\n" + d.output());
    return r["median_us"];
  };
  std::vector<double> direct, relayed, ratio;
  for (int i = 0; i < o.runs; ++i) {
    progress(o, "net: run " + std::to_string(i + 1) + "/" + std::to_string(o.runs) + " (" + std::to_string(n) + " round trips each way)");
    const double d = run(c->command({"bench", "net-driver", std::to_string(n)}), "the direct driver");
    const double r = run(c->driver_at("laptop", Nat::cone, {self, "bench", "net-driver", std::to_string(n)}), "the relayed driver");
    direct.push_back(d);
    relayed.push_back(r);
    ratio.push_back(r / d);
  }
  std::vector<Figure> figs;
  if (wanted("net_direct_roundtrip_us")) figs.push_back({"net_direct_roundtrip_us", median(direct), "us", false, direct});
  if (wanted("net_relayed_roundtrip_us")) figs.push_back({"net_relayed_roundtrip_us", median(relayed), "us", false, relayed});
  if (wanted("relayed_vs_direct_roundtrip_ratio"))
    figs.push_back({"relayed_vs_direct_roundtrip_ratio", median(ratio), "x", false, ratio});
  print("net", o, figs);
  return 0;
}

}  // namespace iogrid::bench
