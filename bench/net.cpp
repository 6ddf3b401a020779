// iogrid bench net: connections across NATs (issue: GPUs behind NAT). A head, a 2-CPU node on the lab network
// ("net-1") and one at home behind a cone NAT ("net-nat"), in network namespaces (runtime/cluster/netns_lab.hpp,
// as root).
//   net_direct_roundtrip_us / net_relayed_roundtrip_us / net_punched_roundtrip_us: the same driver program run
//     three times, on the lab's network (net-1's workers dial it directly), at home behind a symmetric NAT (they
//     reach it through the head's relay, runtime/cluster/relay_server.hpp: the hole punch fails) and behind a
//     cone NAT (the punch works: a direct connection, runtime/transport/punch.hpp): the median of N sequential
//     empty tasks on net-1 (submit, run, result back), after a warm-up; relayed_vs_direct_roundtrip_ratio: the
//     first two from the same run (target <= 2).
//   net_direct_transfer_mib_s / net_relayed_transfer_mib_s: a driver on the lab network pulls an object of
//     1 GiB (--seconds below 1 scales it down) made on net-1 (dialled directly) and one made on net-nat (its
//     address refuses: through the relay, hole punching off for this one pull); the time inside the data plane's fetch (runtime/transport/
//     data_plane.hpp), not the value's decoding. relay_vs_direct_transfer_ratio: relayed / direct throughput,
//     same run (target >= 0.5). relay_fallback_seconds: from the failed direct dial to the relayed connection
//     authenticated (target <= 2).
//   direct_share_of_eligible_pairs: six nodes (two on the lab network, two behind cone NATs, one behind a
//     symmetric NAT, one behind a firewall dropping all inbound) each make a 1 MiB object and every other node
//     pulls it (`iogrid bench net-matrix NODES...`, printing "MATRIX holder>puller=direct|punched|relayed@S ..."):
//     the share of pairs among the first four that did not need the relay, direct or hole-punched
//     (runtime/transport/punch.hpp; target 1.0). failed_punch_fallback_seconds: for the pairs that stayed
//     relayed although the holder sits behind a NAT (a symmetric NAT on either side), from the failed direct
//     dial to the relayed connection working, the failed punch included (median over those pairs).
//   relay_bytes_per_idle_connection: a relay in this process with 200 spliced sessions, each idle after one
//     small exchange: its resident memory growth per session (user space; the kernel's socket buffers are not
//     counted).
// The drivers are `iogrid bench net-driver N` and `iogrid bench net-transfer BYTES` (this executable), which
// print "NET median_us=M p99_us=P" and "XFER direct_s=D relayed_s=R fallback_s=F".
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iogrid/iogrid.hpp>
#include <iostream>
#include <map>
#include <sstream>

#include <boost/asio.hpp>
#include <fstream>
#include <thread>

#include "bench/report.hpp"
#include "runtime/cluster/local_cluster.hpp"
#include "runtime/cluster/relay_server.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/relay_hello.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int net_empty(int x) { return x; }
IOGRID_REMOTE(net_empty);

std::vector<std::uint8_t> net_bytes(std::uint64_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::uint64_t i = 0; i < n; i += 4096) v[i] = static_cast<std::uint8_t>(i >> 12);
  return v;
}
IOGRID_REMOTE(net_bytes);

// Pulls the object in `box` here: "relayed@S" when this process's connection to its holder went through the
// head's relay (S: seconds from the failed direct dial to the relayed connection working, a failed hole punch
// included), "punched" when hole punching connected it, else "direct" (a ref inside a vector is fetched by
// get, inside the call).
std::string net_pull_path(const std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>>& box) {
  const auto before = iogrid::transfer_stats();
  const auto v = iogrid::get(box.at(0), std::chrono::seconds(120));
  if (v.size() < 4096 || v[4096] != 1) throw std::runtime_error("a wrong object");
  const auto after = iogrid::transfer_stats();
  if (after.relayed > before.relayed) {
    auto client = iogrid::runtime::transport::process_data_client();
    return "relayed@" + std::to_string(client ? client->stats().last_fallback_seconds : 0.0);
  }
  return after.punched > before.punched ? "punched" : "direct";
}
IOGRID_REMOTE(net_pull_path);

// Resident memory of this process, in bytes.
double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * 4096.0;
}

// A relay in this process, `sessions` spliced sessions through it, each idle after one small round trip:
// resident bytes per session.
double relay_idle_bytes(int sessions) {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  const std::string token = "bench-net-idle";
  asio::io_context io;
  std::vector<tcp::socket> accepted;  // the targets' ends, as the relay asks them to dial in
  std::mutex m;
  iogrid::runtime::cluster::RelayOptions o;
  o.token = token;
  o.bind = "127.0.0.1";
  std::uint16_t relay_port = 0;
  o.ask_target = [&](const std::string&, const std::string& session, bool) {
    tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), relay_port});
    asio::write(s, asio::buffer(iogrid::runtime::transport::relay_hello("ACCEPT", session, token)));
    std::lock_guard<std::mutex> g(m);
    accepted.push_back(std::move(s));
    return true;
  };
  iogrid::runtime::cluster::RelayServer relay(o);
  relay_port = relay.port();
  std::vector<tcp::socket> dialers;
  dialers.reserve(static_cast<std::size_t>(sessions));
  accepted.reserve(static_cast<std::size_t>(sessions));  // never reallocated while a session is read below
  const double before = resident_bytes();
  for (int i = 0; i < sessions; ++i) {
    dialers.emplace_back(io);
    dialers.back().connect({asio::ip::make_address("127.0.0.1"), relay_port});
    asio::write(dialers.back(), asio::buffer(iogrid::runtime::transport::relay_hello("CONNECT", "idle", token) + "ping"));
  }
  for (int i = 0; i < sessions; ++i) {  // each session carries "ping" one way and "pong" back
    char buf[4];
    tcp::socket* target = nullptr;
    for (int tries = 0; !target && tries < 5000; ++tries) {
      {
        std::lock_guard<std::mutex> g(m);
        if (accepted.size() > static_cast<std::size_t>(i)) target = &accepted[static_cast<std::size_t>(i)];
      }
      if (!target) std::this_thread::sleep_for(1ms);
    }
    if (!target) throw std::runtime_error("the relay did not splice a session");
    asio::read(*target, asio::buffer(buf, 4));
  }
  {
    std::lock_guard<std::mutex> g(m);
    for (auto& t : accepted) asio::write(t, asio::buffer(std::string("pong")));
  }
  for (auto& d : dialers) {
    char buf[4];
    asio::read(d, asio::buffer(buf, 4));
  }
  std::this_thread::sleep_for(100ms);
  const double after = resident_bytes();
  if (relay.stats().active != static_cast<std::uint64_t>(sessions)) throw std::runtime_error("the relay lost idle sessions");
  // The test's own sockets hold no user-space buffers: the growth is the relay's sessions.
  return std::max(0.0, after - before) / sessions;
}

}  // namespace

namespace iogrid::bench {

int run_net_driver(int n) {
  iogrid::init();  // IOGRID_ADDRESS / IOGRID_TOKEN_FILE from the environment
  for (int i = 0; i < 50; ++i)
    if (iogrid::get(iogrid::task(net_empty).options({.node = "net-1"}).remote(i), 60s) != i) throw std::runtime_error("a wrong result");
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (iogrid::get(iogrid::task(net_empty).options({.node = "net-1"}).remote(i), 60s) != i) throw std::runtime_error("a wrong result");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  iogrid::shutdown();
  std::cout << "NET median_us=" << us[us.size() / 2] << " p99_us=" << us[us.size() * 99 / 100] << std::endl;
  return 0;
}

int run_net_transfer_driver(std::uint64_t bytes) {
  iogrid::init();
  auto direct = iogrid::task(net_bytes).options({.node = "net-1"}).remote(bytes);
  auto behind = iogrid::task(net_bytes).options({.node = "net-nat"}).remote(bytes);
  iogrid::wait(std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>>{direct, behind}, 2, 600s);
  auto client = runtime::transport::process_data_client();
  if (!client) throw std::runtime_error("this driver has no data plane client");
  client->set_punch(false);  // the relay's own throughput (a punch from the lab network to a cone NAT works)
  auto pull = [&](const iogrid::ObjectRef<std::vector<std::uint8_t>>& ref, const char* what) {
    auto v = iogrid::get(ref, 600s);
    if (v.size() != bytes || v[4096] != 1) throw std::runtime_error(std::string("a wrong object from ") + what);
    return client->stats();
  };
  const auto d = pull(direct, "net-1");
  if (d.relayed != 0) throw std::runtime_error("the pull from net-1 went through the relay");
  const auto r = pull(behind, "net-nat");
  if (r.relayed != 1) throw std::runtime_error("the pull from net-nat did not go through the relay");
  iogrid::shutdown();
  std::cout << "XFER direct_s=" << d.last_seconds << " relayed_s=" << r.last_seconds << " fallback_s=" << r.last_fallback_seconds
            << std::endl;
  return 0;
}

int run_net_matrix_driver(const std::vector<std::string>& nodes) {
  iogrid::init();
  std::map<std::string, iogrid::ObjectRef<std::vector<std::uint8_t>>> made;
  for (const auto& n : nodes) made.emplace(n, iogrid::task(net_bytes).options({.node = n}).remote(std::uint64_t(1u << 20)));
  std::string out;
  for (const auto& holder : nodes)
    for (const auto& puller : nodes) {
      if (holder == puller) continue;
      std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> box{made.at(holder)};
      out += " " + holder + ">" + puller + "=" + iogrid::get(iogrid::task(net_pull_path).options({.node = puller}).remote(box), 300s);
    }
  iogrid::shutdown();
  std::cout << "MATRIX" << out << std::endl;
  return 0;
}

int run_net(const Options& o) {
  auto wanted = selection(o, "net", {"net_direct_roundtrip_us", "net_relayed_roundtrip_us", "net_punched_roundtrip_us",
                                     "relayed_vs_direct_roundtrip_ratio",
                                     "net_direct_transfer_mib_s", "net_relayed_transfer_mib_s", "relay_vs_direct_transfer_ratio",
                                     "relay_fallback_seconds", "relay_bytes_per_idle_connection", "direct_share_of_eligible_pairs",
                                     "failed_punch_fallback_seconds"});
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
  c->add_node("net-nat", {"--num-cpus", "1"}, Nat::cone);
  const bool matrix = wanted("direct_share_of_eligible_pairs") || wanted("failed_punch_fallback_seconds");
  if (matrix) {  // two of each kind of eligible host for the matrix, and the two that are not eligible
    c->add_node("net-2", {"--num-cpus", "1"});
    c->add_node("net-nat2", {"--num-cpus", "1"}, Nat::cone);
    c->add_node("net-sym", {"--num-cpus", "1"}, Nat::symmetric);
    c->add_node("net-fw", {"--num-cpus", "1"}, Nat::firewall);
  }
  if (!c->wait_nodes(matrix ? 6 : 2)) throw std::runtime_error("the nodes did not join:\n" + c->logs());
  const auto bytes = static_cast<std::uint64_t>((1ull << 30) * std::min(1.0, o.seconds)) & ~std::uint64_t(4095);
  const int n = std::max(100, static_cast<int>(2000 * o.seconds));
  auto run = [&](runtime::cluster::ChildProcess& d, const std::string& what) {
    if (d.wait(std::chrono::minutes(10)) != 0) throw std::runtime_error(what + " failed:\n" + d.output() + "\n" + c->logs());
    auto r = parse_tagged_line(d.output(), "NET");
    if (r.empty()) throw std::runtime_error(what + " printed no result:\n" + d.output());
    return r["median_us"];
  };
  auto transfer = [&](runtime::cluster::ChildProcess& d) {
    if (d.wait(std::chrono::minutes(10)) != 0) throw std::runtime_error("the transfer driver failed:\n" + d.output() + "\n" + c->logs());
    auto r = parse_tagged_line(d.output(), "XFER");
    if (r.empty()) throw std::runtime_error("the transfer driver printed no result:\n" + d.output());
    return r;
  };
  const bool roundtrips = wanted("net_direct_roundtrip_us") || wanted("net_relayed_roundtrip_us") ||
                          wanted("relayed_vs_direct_roundtrip_ratio") || wanted("net_punched_roundtrip_us");
  const bool transfers = wanted("net_direct_transfer_mib_s") || wanted("net_relayed_transfer_mib_s") ||
                         wanted("relay_vs_direct_transfer_ratio") || wanted("relay_fallback_seconds");
  const double mib = double(bytes) / (1 << 20);
  std::vector<double> direct, relayed, punched, ratio, x_direct, x_relayed, x_ratio, fallback, idle, share, punch_fallback;
  for (int i = 0; i < o.runs; ++i) {
    const auto run_no = "net: run " + std::to_string(i + 1) + "/" + std::to_string(o.runs);
    if (roundtrips) {
      progress(o, run_no + " (" + std::to_string(n) + " round trips: direct, relayed, punched)");
      const double d = run(c->command({"bench", "net-driver", std::to_string(n)}), "the direct driver");
      // Behind a symmetric NAT the hole punch fails (once, in the warm-up): the relay carries every task.
      const double r = run(c->driver_at("laptop-sym", Nat::symmetric, {self, "bench", "net-driver", std::to_string(n)}), "the relayed driver");
      // Behind a cone NAT it works: net-1's worker ends up connected to the driver directly.
      const double p = run(c->driver_at("laptop-cone", Nat::cone, {self, "bench", "net-driver", std::to_string(n)}), "the punched driver");
      direct.push_back(d);
      relayed.push_back(r);
      punched.push_back(p);
      ratio.push_back(r / d);
    }
    if (transfers) {
      progress(o, run_no + " (" + std::to_string(static_cast<long long>(mib)) + " MiB pulled directly and through the relay)");
      auto x = transfer(c->command({"bench", "net-transfer", std::to_string(bytes)}));
      x_direct.push_back(mib / x["direct_s"]);
      x_relayed.push_back(mib / x["relayed_s"]);
      x_ratio.push_back(x["direct_s"] / x["relayed_s"]);
      fallback.push_back(x["fallback_s"]);
    }
    if (wanted("relay_bytes_per_idle_connection")) idle.push_back(relay_idle_bytes(200));
    if (matrix) {
      progress(o, run_no + " (the NAT matrix: 6 nodes pull each other's objects)");
      auto& d = c->command({"bench", "net-matrix", "net-1", "net-2", "net-nat", "net-nat2", "net-sym", "net-fw"});
      if (d.wait(std::chrono::minutes(10)) != 0) throw std::runtime_error("the matrix driver failed:\n" + d.output() + "\n" + c->logs());
      const auto text = d.output();
      const auto at = text.find("MATRIX");
      if (at == std::string::npos) throw std::runtime_error("the matrix driver printed no result:\n" + text);
      std::istringstream pairs(text.substr(at + 6, text.find('\n', at) - at - 6));
      int eligible = 0, open = 0;
      auto is_eligible = [](const std::string& n) { return n == "net-1" || n == "net-2" || n == "net-nat" || n == "net-nat2"; };
      for (std::string p; pairs >> p;) {
        const auto gt = p.find('>'), eq = p.find('=');
        if (gt == std::string::npos || eq == std::string::npos) continue;
        const auto holder = p.substr(0, gt), puller = p.substr(gt + 1, eq - gt - 1);
        auto path = p.substr(eq + 1);
        if (const auto at_sign = path.find('@'); at_sign != std::string::npos) {
          if (holder != "net-1" && holder != "net-2") punch_fallback.push_back(std::atof(path.c_str() + at_sign + 1));
          path.resize(at_sign);
        }
        if (!is_eligible(holder) || !is_eligible(puller)) continue;
        ++eligible;
        open += path != "relayed";
      }
      progress(o, "net: matrix" + text.substr(at + 6, text.find('\n', at) - at - 6));
      share.push_back(eligible ? double(open) / eligible : 0.0);
    }
  }
  std::vector<Figure> figs;
  if (wanted("net_direct_roundtrip_us")) figs.push_back({"net_direct_roundtrip_us", median(direct), "us", false, direct});
  if (wanted("net_relayed_roundtrip_us")) figs.push_back({"net_relayed_roundtrip_us", median(relayed), "us", false, relayed});
  if (wanted("net_punched_roundtrip_us")) figs.push_back({"net_punched_roundtrip_us", median(punched), "us", false, punched});
  if (wanted("relayed_vs_direct_roundtrip_ratio"))
    figs.push_back({"relayed_vs_direct_roundtrip_ratio", median(ratio), "x", false, ratio});
  if (wanted("net_direct_transfer_mib_s")) figs.push_back({"net_direct_transfer_mib_s", median(x_direct), "MiB/s", true, x_direct});
  if (wanted("net_relayed_transfer_mib_s")) figs.push_back({"net_relayed_transfer_mib_s", median(x_relayed), "MiB/s", true, x_relayed});
  if (wanted("relay_vs_direct_transfer_ratio"))
    figs.push_back({"relay_vs_direct_transfer_ratio", median(x_ratio), "x", true, x_ratio});
  if (wanted("relay_fallback_seconds")) figs.push_back({"relay_fallback_seconds", median(fallback), "s", false, fallback});
  if (wanted("relay_bytes_per_idle_connection"))
    figs.push_back({"relay_bytes_per_idle_connection", median(idle), "bytes", false, idle});
  if (wanted("direct_share_of_eligible_pairs"))
    figs.push_back({"direct_share_of_eligible_pairs", median(share), "share", true, share});
  if (wanted("failed_punch_fallback_seconds") && !punch_fallback.empty())
    figs.push_back({"failed_punch_fallback_seconds", median(punch_fallback), "s", false, punch_fallback});
  print("net", o, figs);
  return 0;
}

}  // namespace iogrid::bench
