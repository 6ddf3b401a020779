#include "cli/cluster_commands.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <map>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <algorithm>
#include <atomic>
#include <thread>

#include "gpu/devices.hpp"
#include "runtime/cluster/cluster_client.hpp"
#include "runtime/cluster/daemons.hpp"
#include "runtime/cluster/tunnel_ends.hpp"
#include "runtime/transport/relay_hello.hpp"
#include "runtime/transport/tcp.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid::cli {

namespace {

using runtime::transport::default_token_path;

struct Args {
  explicit Args(const std::vector<std::string>& a) : args(a) {}
  const std::vector<std::string>& args;
  std::size_t i = 0;
  bool done() const { return i >= args.size(); }
  const std::string& peek() const { return args[i]; }
  std::string value(const std::string& flag) {
    if (i + 1 >= args.size()) throw std::invalid_argument(flag + " needs a value");
    i += 1;
    return args[i];
  }
};

double number(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    double d = std::stod(v, &used);
    if (used == v.size() && d >= 0) return d;
  } catch (...) {
  }
  throw std::invalid_argument(flag + " needs a non-negative number, got '" + v + "'");
}

std::map<std::string, std::string> key_values(const std::string& flag, const std::string& v) {
  std::map<std::string, std::string> out;
  std::stringstream in(v);
  for (std::string item; std::getline(in, item, ',');) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument(flag + " takes KEY=VALUE[,KEY=VALUE...], got '" + item + "'");
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

// "A100:40:8.0x2,RTX4090:24" -> GPUs (model:memory GiB[:compute capability][xcount]).
std::vector<sched::Gpu> parse_gpus(const std::string& v) {
  std::vector<sched::Gpu> out;
  std::stringstream in(v);
  for (std::string item; std::getline(in, item, ',');) {
    int count = 1;
    auto x = item.rfind('x');
    if (x != std::string::npos && x > item.rfind(':') && item.find(':') != std::string::npos) {
      count = std::stoi(item.substr(x + 1));
      item = item.substr(0, x);
    }
    std::vector<std::string> parts;
    std::stringstream p(item);
    for (std::string s; std::getline(p, s, ':');) parts.push_back(s);
    if (parts.size() < 2 || parts[0].empty() || count < 1)
      throw std::invalid_argument("--gpus takes MODEL:MEMORY_GIB[:COMPUTE_CAPABILITY][xCOUNT],... (e.g. A100:40:8.0x2), got '" + item + "'");
    sched::Gpu g;
    g.model = parts[0];
    g.memory_mib = static_cast<std::int64_t>(number("--gpus memory", parts[1]) * 1024);
    g.compute_capability = parts.size() > 2 ? number("--gpus compute capability", parts[2]) : 8.0;
    for (int i = 0; i < count; ++i) out.push_back(g);
  }
  return out;
}

std::string token_or_create(const std::string& path, bool create) {
  if (!create) return runtime::transport::load_token(path);
  bool created = false;
  auto t = runtime::transport::load_or_create_token(path, &created);
  if (created) std::cout << "created a new cluster token in " << path << " (copy it to every node)\n";
  return t;
}

std::string address_or_env(const std::string& a) {
  if (!a.empty()) return a;
  if (const char* e = std::getenv("IOGRID_ADDRESS"); e && *e) return e;
  throw std::invalid_argument("no head address: pass --address HOST:PORT or set IOGRID_ADDRESS");
}

// --tls-cert/--tls-key/--tls-ca for client commands: they reach the connection (and a submitted driver)
// through IOGRID_TLS_CERT/KEY/CA.
bool tls_flag(Args& a, const std::string& f) {
  const char* var = f == "--tls-cert" ? "IOGRID_TLS_CERT" : f == "--tls-key" ? "IOGRID_TLS_KEY" : f == "--tls-ca" ? "IOGRID_TLS_CA" : nullptr;
  if (!var) return false;
  setenv(var, a.value(f).c_str(), 1);
  return true;
}

long physical_memory_mib() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? pages / 1024 * size / 1024 : 8192;
}

}  // namespace

std::string default_ui_keys_path(const std::string& token_file) {
  auto dir = std::filesystem::path(token_file).parent_path();
  return (dir.empty() ? std::filesystem::path("ui-keys") : dir / "ui-keys").string();
}

int ui_key_command(const std::vector<std::string>& args) {
  std::string file = default_ui_keys_path(default_token_path()), sub, name;
  for (Args a(args); !a.done(); ++a.i) {
    const auto f = a.peek();
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid ui-key add NAME | list | remove NAME [--keys-file F]\n"
                   "Keys that log people in to the head's dashboard (worker view, console) as NAME, next to the cluster\n"
                   "token (user 'operator'). Kept one 'NAME KEY' per line in F (default ~/.iogrid/ui-keys, mode 0600),\n"
                   "the file `iogrid head --ui-keys` reads at each login: adding or removing takes effect at once.\n";
      return 0;
    }
    if (f == "--keys-file") file = a.value(f);
    else if (sub.empty()) sub = f;
    else if (name.empty()) name = f;
    else throw std::invalid_argument("unexpected '" + f + "' for iogrid ui-key (see iogrid ui-key --help)");
  }
  if (sub != "add" && sub != "list" && sub != "remove")
    throw std::invalid_argument("iogrid ui-key takes add NAME, list or remove NAME (see iogrid ui-key --help)");
  if (sub != "list" && (name.empty() || name.find_first_of(" \t\n#") != std::string::npos))
    throw std::invalid_argument("iogrid ui-key " + sub + " needs a NAME without spaces or '#'");
  std::vector<std::pair<std::string, std::string>> keys;
  {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string n, k;
      if (ls >> n >> k && n[0] != '#') keys.emplace_back(n, k);
    }
  }
  if (sub == "list") {
    for (const auto& [n, k] : keys) std::cout << n << "  " << k.substr(0, 6) << "...\n";
    if (keys.empty()) std::cout << "no user keys in " << file << "\n";
    return 0;
  }
  const auto before = keys.size();
  std::erase_if(keys, [&](const auto& e) { return e.first == name; });
  std::string key;
  if (sub == "add") {
    key = runtime::transport::to_hex(runtime::transport::random_bytes(24));
    keys.emplace_back(name, key);
  } else if (keys.size() == before) {
    std::cerr << "iogrid: no key for '" << name << "' in " << file << "\n";
    return 1;
  }
  if (auto dir = std::filesystem::path(file).parent_path(); !dir.empty()) std::filesystem::create_directories(dir);
  const auto tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    ::chmod(tmp.c_str(), 0600);
    out << "# iogrid dashboard user keys: NAME KEY (iogrid ui-key)\n";
    for (const auto& [n, k] : keys) out << n << " " << k << "\n";
  }
  std::filesystem::rename(tmp, file);
  if (sub == "add")
    std::cout << key << "\n(log in to the dashboard as '" << name << "' with this key; kept in " << file << ")\n";
  else
    std::cout << "removed the key of '" << name << "'\n";
  return 0;
}

int head_command(const std::vector<std::string>& args) {
  runtime::cluster::HeadOptions o;
  o.tls = runtime::transport::tls_from_env();
  std::string token_file = default_token_path(), level = "info";
  for (Args a(args); !a.done(); ++a.i) {
    const auto f = a.peek();
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid head [--port P] [--bind ADDR] [--token-file F] [--state DIR] [--policy NAME]\n"
                   "                   [--user-weights alice=2,bob=1] [--fair-quantum-ms MS] [--node-timeout-ms MS]\n"
                   "                   [--heartbeat-ms MS] [--history raw=6h,minute=7d,hour=365d,events=90d,interval=10s]\n"
                   "                   [--log-level LEVEL]\n"
                   "                   [--dashboard-port D] [--dashboard-bind ADDR] [--no-dashboard]\n"
                   "                   [--ui-keys F] [--dashboard-open] [--tls-cert F --tls-key F --tls-ca F]\n"
                   "                   [--relay-port R] [--no-relay] [--relay-max-bytes N] [--network-fee F]\n"
                   "                   [--pricing-round-ms MS] [--relay-nodes NAME,...|*] [--verify-fraction F]\n"
                   "Starts the head of a cluster. P defaults to 6380 (0: any free port). The token file is created\n"
                   "(64 random hex characters, mode 0600) when missing; copy it to every node and driver machine.\n"
                   "A node is declared dead after --node-timeout-ms (default 2500, so within 3 s) without a heartbeat.\n"
                   "The dashboard (web UI, JSON API under /api/v1/, /metrics for Prometheus) listens on 127.0.0.1:8265\n"
                   "by default. Its explorer, /api/v1/explorer, the cluster/ series and /metrics are public; the worker\n"
                   "view, the console and the rest of the API need a login: the cluster token (user 'operator') or a\n"
                   "user key from `iogrid ui-key add NAME` (kept in --ui-keys, default ~/.iogrid/ui-keys beside the\n"
                   "token). --dashboard-open drops the login (a trusted single-user machine only).\n"
                   "With --tls-cert/--tls-key/--tls-ca (or IOGRID_TLS_CERT/KEY/CA) every connection runs mutual TLS: each\n"
                   "process shows a certificate signed by the CA and checks its peer's.\n"
                   "History (GPU telemetry per node and device, cluster totals, node and job events) is kept in\n"
                   "STATE/history.db (in memory without --state): raw points every --history interval (default 10s)\n"
                   "for 6 hours, then minute means for 7 days and hour means for 365 days; events for 90 days.\n"
                   "Served under /api/v1/history, /api/v1/series and /api/v1/events on the dashboard's port.\n"
                   "--policy: fgd (default: fragmentation-aware, it measured best in `iogrid bench scale`), pack (best\n"
                   "fit), market (price, reputation and region against fit), spread, dot-product, first-fit, random. Waiting work is served by priority,\n"
                   "then weighted fair share between users (--user-weights) and between a user's jobs (job submit\n"
                   "--weight), with small work backfilled around waiting gangs. Shares are kept over time too: while a\n"
                   "job waits with less than another holds, one of the holder's leases ends after its current task\n"
                   "once it has run --fair-quantum-ms (default 2000; 0: a job keeps its leases until its queue is\n"
                   "empty), so jobs with equal shares take turns.\n"
                   "The relay (--relay-port, default any free port, printed as IOGRID_RELAY_PORT; open it in the head's\n"
                   "firewall) carries the connections of workers to a driver the head cannot dial back (a laptop behind\n"
                   "a NAT): `iogrid status` shows each node's and driver's REACH. The relay copies bytes and sees no\n"
                   "plaintext when TLS is on. --relay-max-bytes caps what one relayed connection may carry.\n"
                   "--relay-nodes names the nodes whose relays (iogrid node --relay) this head may hand out ('*': any):\n"
                   "a relay sees who talks to whom, and the bytes without TLS, so providers relay only when named.\n"
                   "With --state the ledger keeps every charge as an entry of a hash-chained journal (STATE/head.db),\n"
                   "checkpoints signed with STATE/ledger.key (its public half: ledger.key.pub; keep a copy elsewhere):\n"
                   "`iogrid ledger verify --state STATE` checks it. Each charge is split into the provider's earning\n"
                   "and the network's fee, --network-fee of it (default 0).\n"
                   "Posted prices per GPU model and region move every --pricing-round-ms (default 60000) with\n"
                   "utilisation and waiting work: `iogrid market`, /api/v1/market.\n"
                   "--verify-fraction (default 0): the share of the runs of tasks that set no TaskOptions::verify_fraction\n"
                   "that their driver runs again on another provider to check (spot checks); a provider outvoted by two\n"
                   "others loses reputation and is recorded in the ledger. Only for deterministic work.\n";
      return 0;
    }
    if (f == "--user-weights") {
      for (const auto& [k, v] : key_values(f, a.value(f))) o.user_weights[k] = number(f, v);
      continue;
    }
    if (f == "--port") o.port = static_cast<std::uint16_t>(number(f, a.value(f)));
    else if (f == "--bind") o.bind = a.value(f);
    else if (f == "--token-file") token_file = a.value(f);
    else if (f == "--state") o.state_dir = a.value(f);
    else if (f == "--pricing-round-ms") {
      const auto ms = number(f, a.value(f));
      if (ms < 0) throw std::invalid_argument("--pricing-round-ms takes milliseconds (0: prices never move)");
      o.pricing_round = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
    } else if (f == "--verify-fraction") {
      o.verify_fraction = number(f, a.value(f));
      if (!(o.verify_fraction >= 0 && o.verify_fraction <= 1)) throw std::invalid_argument("--verify-fraction takes a share from 0 to 1 (0.05: 5%)");
    } else if (f == "--network-fee") {
      o.network_fee = number(f, a.value(f));
      if (o.network_fee < 0 || o.network_fee > 1) throw std::invalid_argument("--network-fee takes a share from 0 to 1 (0.05: 5%)");
    }
    else if (f == "--policy") o.policy = a.value(f);
    else if (f == "--node-timeout-ms") o.node_timeout = std::chrono::milliseconds(static_cast<long>(number(f, a.value(f))));
    else if (f == "--fair-quantum-ms") o.fair_quantum = std::chrono::milliseconds(static_cast<long>(number(f, a.value(f))));
    else if (f == "--history") o.history = runtime::head::parse_history_options(a.value(f));
    else if (f == "--heartbeat-ms") o.heartbeat = std::chrono::milliseconds(static_cast<long>(number(f, a.value(f))));
    else if (f == "--log-level") level = a.value(f);
    else if (f == "--dashboard-port") {
      o.dashboard_port = static_cast<int>(number(f, a.value(f)));
      o.dashboard_port_explicit = true;
    } else if (f == "--no-dashboard") o.dashboard_port = -1;
    else if (f == "--dashboard-bind") o.dashboard_bind = a.value(f);
    else if (f == "--ui-keys") o.ui_keys_file = a.value(f);
    else if (f == "--dashboard-open") o.dashboard_open = true;
    else if (f == "--relay-port") o.relay_port = static_cast<int>(number(f, a.value(f)));
    else if (f == "--no-relay") o.relay_port = -1;
    else if (f == "--relay-max-bytes") o.relay_max_bytes = static_cast<std::uint64_t>(number(f, a.value(f)));
    else if (f == "--relay-nodes") {
      std::istringstream names(a.value(f));
      for (std::string n; std::getline(names, n, ',');)
        if (!n.empty()) o.relay_nodes.insert(n);
    }
    else if (f == "--tls-cert") o.tls.cert = a.value(f);
    else if (f == "--tls-key") o.tls.key = a.value(f);
    else if (f == "--tls-ca") o.tls.ca = a.value(f);
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid head (see iogrid head --help)");
  }
  if (o.ui_keys_file.empty()) o.ui_keys_file = default_ui_keys_path(token_file);
  o.token = token_or_create(token_file, true);
  return runtime::cluster::run_head(o, token_file, level, std::cout);
}

int node_command(const std::vector<std::string>& args) {
  runtime::cluster::NodeDaemonOptions o;
  o.tls = runtime::transport::tls_from_env();
  std::string address, token_file = default_token_path(), level = "info";
  double cpus = 0, mem = 0;
  bool gpus_declared = false;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  o.node.name = host;
  for (Args a(args); !a.done(); ++a.i) {
    const auto f = a.peek();
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid node --address HOST:PORT [--token-file F] [--name NAME] [--num-cpus N] [--memory-gib G]\n"
                   "                   [--gpus MODEL:MEM_GIB[:CC][xN],...] [--resources K=V,...] [--labels K=V,...]\n"
                   "                   [--price P] [--reputation R] [--work-dir DIR] [--log-level LEVEL]\n"
                   "                   [--telemetry-file F] [--allow-tunnel PORT,...] [--tls-cert F --tls-key F --tls-ca F]\n"
                   "                   [--relay | --relay-port P] [--relay-bind ADDR] [--relay-max-bytes N]\n"
                   "Joins this machine to the cluster. CPUs and memory are detected, GPUs through NVML (no driver: no\n"
                   "GPUs); flags override them. Declared GPUs (--gpus A100:40:8.0x2) let a CPU machine stand in for a GPU\n"
                   "node in tests and demos; --telemetry-file F makes such a node report the telemetry in F (a JSON\n"
                   "array of {index, temperature_c, power_w, power_limit_w, utilization_pct, memory_used_gib,\n"
                   "sm_clock_mhz, memory_clock_mhz}, read again at every heartbeat) instead of NVML's.\n"
                   "--allow-tunnel 8888,22 lets holders of the cluster token reach these ports of this machine\n"
                   "(127.0.0.1 only) with `iogrid tunnel NODE:PORT`, through the head's relay: a notebook, SSH or a model\n"
                   "server behind a NAT, no router settings. No port is reachable unless listed here.\n"
                   "--relay (any free port) or --relay-port P marks this machine as a relay: processes of the cluster\n"
                   "that cannot dial each other (behind NATs and firewalls) meet here instead of at the head. Use it\n"
                   "on a machine anyone can connect to (a public address, P open in its firewall). The head uses it only\n"
                   "when its operator named this node (iogrid head --relay-nodes), once it has dialled it, for the nodes\n"
                   "and drivers that join afterwards (`iogrid status` lists relays and their users). It sees\n"
                   "ciphertext only when TLS is on; --relay-max-bytes caps one connection.\n";
      return 0;
    }
    if (f == "--address") address = a.value(f);
    else if (f == "--token-file") token_file = a.value(f);
    else if (f == "--name") o.node.name = a.value(f);
    else if (f == "--num-cpus") cpus = number(f, a.value(f));
    else if (f == "--memory-gib") mem = number(f, a.value(f));
    else if (f == "--gpus") {
      o.node.gpus = parse_gpus(a.value(f));
      gpus_declared = true;
    } else if (f == "--resources") {
      for (auto& [k, v] : key_values(f, a.value(f))) o.node.total.custom[k] = sched::to_milli(number(f, v));
    } else if (f == "--labels") o.node.labels = key_values(f, a.value(f));
    else if (f == "--price") o.node.price_per_gpu_hour = number(f, a.value(f));
    else if (f == "--reputation") o.node.reputation = number(f, a.value(f));
    else if (f == "--work-dir") o.work_dir = a.value(f);
    else if (f == "--telemetry-file") o.telemetry_file = a.value(f);
    else if (f == "--tls-cert") o.tls.cert = a.value(f);
    else if (f == "--tls-key") o.tls.key = a.value(f);
    else if (f == "--tls-ca") o.tls.ca = a.value(f);
    else if (f == "--log-level") level = a.value(f);
    else if (f == "--allow-tunnel") o.allow_tunnel = runtime::cluster::parse_ports(f, a.value(f));
    else if (f == "--relay") o.relay_port = 0;
    else if (f == "--relay-port") {
      const auto port = number(f, a.value(f));
      if (port < 1 || port > 65535 || port != static_cast<int>(port))
        throw std::invalid_argument("--relay-port takes a port number from 1 to 65535");
      o.relay_port = static_cast<int>(port);
    } else if (f == "--relay-bind") o.relay_bind = a.value(f);
    else if (f == "--relay-max-bytes") o.relay_max_bytes = static_cast<std::uint64_t>(number(f, a.value(f)));
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid node (see iogrid node --help)");
  }
  auto [h, p] = runtime::transport::parse_address(address_or_env(address));
  o.head_host = h;
  o.head_port = p;
  o.token = token_or_create(token_file, false);
  o.node.total.cpus = sched::to_milli(cpus > 0 ? cpus : double(std::max(1u, std::thread::hardware_concurrency())));
  o.node.total.memory_mib = mem > 0 ? static_cast<std::int64_t>(mem * 1024) : physical_memory_mib();
  if (!gpus_declared) {
    std::string note;
    for (const auto& d : gpu::detect_devices(&note)) {
      sched::Gpu g;
      g.model = d.model;
      g.memory_mib = static_cast<std::int64_t>(d.memory_gib * 1024);
      g.compute_capability = d.compute_capability;
      g.verified = false;  // found, not declared: the head challenges it before it gets GPU work
      o.node.gpus.push_back(g);
    }
    if (!note.empty()) std::cout << "iogrid node: " << note << "\n";
  }
  o.node.available = o.node.total;
  return runtime::cluster::run_node(o, level);
}

int status_command(const std::vector<std::string>& args) {
  std::string address, token_file = default_token_path();
  bool json = false;
  for (Args a(args); !a.done(); ++a.i) {
    const auto f = a.peek();
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid status [--address HOST:PORT] [--token-file F] [--json] [--tls-cert F --tls-key F --tls-ca F]\n"
                   "Prints the cluster's nodes (state, resources, GPUs, labels, load), jobs and queued leases.\n";
      return 0;
    }
    if (f == "--address") address = a.value(f);
    else if (f == "--token-file") token_file = a.value(f);
    else if (f == "--json") json = true;
    else if (tls_flag(a, f)) continue;
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid status");
  }
  auto s = nlohmann::json::parse(runtime::cluster::cluster_status_json(address_or_env(address), token_or_create(token_file, false)));
  if (json) {
    std::cout << s.dump() << "\n";
    return 0;
  }
  std::cout << "head " << s["head"].get<std::string>() << ": " << s["nodes"].size() << " nodes alive, "
            << s["dead_nodes"].get<int>() << " dead, " << s["pending_leases"].get<int>() << " leases queued\n\n";
  std::cout << std::left << std::setw(16) << "NODE" << std::setw(16) << "HOST" << std::setw(12) << "REACH" << std::setw(12) << "CPU free/all"
            << std::setw(10) << " MEM GiB" << std::setw(30) << " GPUS" << std::setw(8) << "LEASES" << "LABELS\n";
  for (const auto& n : s["nodes"]) {
    std::ostringstream cpu, gpus, labels, memory;
    cpu << n["cpus_available"].get<double>() << "/" << n["cpus"].get<double>();
    memory << " " << std::fixed << std::setprecision(1) << n["memory_gib"].get<double>();
    std::map<std::string, int> models;
    for (const auto& g : n["gpus"]) {
      std::ostringstream m;
      m << g["model"].get<std::string>() << " " << std::fixed << std::setprecision(0) << g["memory_gib"].get<double>() << "G";
      models[m.str()]++;
    }
    gpus << " ";
    for (const auto& [m, c] : models) gpus << c << "x " << m << " ";
    if (models.empty()) gpus << "-";
    for (const auto& [k, v] : n["labels"].items()) labels << k << "=" << v.get<std::string>() << " ";
    // How the head reaches it: public (dialled back), nat (behind a NAT), firewalled, checking.
    const auto reach = n.contains("reach") ? n["reach"]["path"].get<std::string>() : std::string("-");
    std::cout << std::setw(16) << n["name"].get<std::string>() << std::setw(16) << n["host"].get<std::string>()
              << std::setw(12) << reach << std::setw(12) << cpu.str() << std::setw(10) << memory.str() << std::setw(30) << gpus.str()
              << std::setw(8) << n["active_leases"].get<int>() << labels.str() << "\n";
    if (n.contains("verification") && !n["verification"].get<std::string>().empty()) {
      std::istringstream lines(n["verification"].get<std::string>());
      for (std::string l; std::getline(lines, l);) std::cout << "    " << l << "\n";
    }
  }
  std::cout << "\n" << std::setw(10) << "JOB" << std::setw(12) << "STATE" << std::setw(10) << "LEASES" << std::setw(12)
            << "REACH" << "DRIVER\n";
  for (const auto& j : s["jobs"])
    std::cout << std::setw(10) << j["id"].get<std::string>() << std::setw(12) << j["state"].get<std::string>()
              << std::setw(10) << j["active_leases"].get<int>() << std::setw(12) << j.value("driver_reach", std::string("-"))
              << j["driver"].get<std::string>() << "\n";
  if (s.contains("relay")) {
    const auto& relay = s["relay"];
    const auto operators = relay.value("operators", nlohmann::json::array());
    if (!operators.empty()) {
      auto count = [](const nlohmann::json& j, const char* key) { return static_cast<std::uint64_t>(j.value(key, 0.0)); };
      // The relays processes meet at when they cannot dial each other: the head's and the operators' (--relay).
      std::cout << "\n" << std::setw(16) << "RELAY" << std::setw(24) << "ADDRESS" << std::setw(8) << "USERS" << std::setw(10)
                << "SESSIONS" << std::setw(8) << "OPEN" << std::setw(14) << "BYTES" << "\n";
      if (relay.contains("port"))
        std::cout << std::setw(16) << "(head)" << std::setw(24) << (":" + std::to_string(relay["port"].get<int>()))
                  << std::setw(8) << relay.value("users", 0) << std::setw(10) << count(relay, "sessions") << std::setw(8)
                  << count(relay, "active") << std::setw(14) << count(relay, "bytes") << "\n";
      for (const auto& o : operators)
        std::cout << std::setw(16) << o.value("node", std::string()) << std::setw(24)
                  << (o.value("host", std::string()) + ":" + std::to_string(o.value("port", 0)) +
                      (o.value("usable", false) ? "" : " (not dialled)"))
                  << std::setw(8) << o.value("users", 0) << std::setw(10) << count(o, "sessions") << std::setw(8)
                  << count(o, "active") << std::setw(14) << count(o, "bytes") << "\n";
    }
    if (relay.contains("tunnel_ports") && !relay["tunnel_ports"].empty()) {
      std::cout << "\nTUNNELS (iogrid tunnel NODE:PORT)\n  allowed:";
      for (const auto& [node, ports] : relay["tunnel_ports"].items()) {
        std::string list;
        for (const auto& p : ports) list += (list.empty() ? "" : ",") + std::to_string(p.get<int>());
        std::cout << " " << node << ":" << list;
      }
      std::cout << "\n";
      for (const auto& t : relay.value("tunnels", nlohmann::json::array()))
        std::cout << "  open: " << t["target"].get<std::string>() << " for " << t["from"].get<std::string>() << ", "
                  << static_cast<long>(t["seconds"].get<double>()) << " s, " << t["bytes"].get<std::uint64_t>() << " bytes\n";
    }
  }
  auto clusters = nlohmann::json::parse(
      runtime::cluster::admin(address_or_env(address), token_or_create(token_file, false), "cluster.list", "{}"));
  if (!clusters.empty()) {
    std::cout << "\n" << std::setw(10) << "CLUSTER" << std::setw(8) << "GPUS" << std::setw(12) << "PRICE/H" << "NODES (GPUs)\n";
    for (const auto& cl : clusters) {
      std::string nodes;
      for (const auto& n : cl["nodes"]) nodes += n["node"].get<std::string>() + ":" + std::to_string(n["gpus"].get<int>()) + " ";
      std::ostringstream price;
      price << std::fixed << std::setprecision(2) << cl["price_per_hour"].get<double>();
      std::cout << std::setw(10) << cl["id"].get<std::string>() << std::setw(8) << cl["gpus"].get<int>() << std::setw(12)
                << price.str() << nodes << "\n";
    }
  }
  return 0;
}

int tunnel_command(const std::vector<std::string>& args) {
  std::string address, token_file = default_token_path(), target, bind = "127.0.0.1";
  long local = -1;
  for (Args a(args); !a.done(); ++a.i) {
    const auto f = a.peek();
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid tunnel NODE:PORT [--local PORT] [--bind ADDR] [--address HOST:PORT] [--token-file F]\n"
                   "Forwards a local port (default: the same number) to port PORT of node NODE, through the head's\n"
                   "relay: reach a notebook, SSH or a model server on a machine behind a NAT, no router settings.\n"
                   "The node's owner allows ports explicitly (iogrid node --allow-tunnel 8888,22); `iogrid status`\n"
                   "lists the ports each node allows and the tunnels open now. Every connection is signed with the\n"
                   "cluster token and logged by the head and the node. The bytes are the application's own (use SSH,\n"
                   "HTTPS, or a notebook's token): the relay does not encrypt them. --bind 0.0.0.0 shares the local\n"
                   "port with your network (default: this machine only). Runs until interrupted (Ctrl-C).\n";
      return 0;
    }
    if (f == "--address") address = a.value(f);
    else if (f == "--token-file") token_file = a.value(f);
    else if (f == "--local") local = static_cast<long>(runtime::cluster::parse_ports(f, a.value(f)).at(0));
    else if (f == "--bind") bind = a.value(f);
    else if (!f.empty() && f[0] == '-') throw std::invalid_argument("unknown option '" + f + "' for iogrid tunnel (see iogrid tunnel --help)");
    else if (target.empty()) target = f;
    else throw std::invalid_argument("iogrid tunnel takes one NODE:PORT, got '" + target + "' and '" + f + "'");
  }
  const auto colon = target.rfind(':');
  if (target.empty() || colon == std::string::npos || colon == 0)
    throw std::invalid_argument("iogrid tunnel needs NODE:PORT (e.g. gpu-box:8888), got '" + target + "'");
  const auto node = target.substr(0, colon);
  const auto port = runtime::cluster::parse_ports("NODE:PORT", target.substr(colon + 1)).at(0);
  if (local < 0) local = port;
  const auto head = address_or_env(address);
  const auto token = token_or_create(token_file, false);
  const auto s = nlohmann::json::parse(runtime::cluster::cluster_status_json(head, token));
  bool alive = false;
  for (const auto& n : s["nodes"]) alive = alive || n["name"] == node;
  if (!alive) throw std::invalid_argument("no live node named '" + node + "' (see iogrid status)");
  if (!s.contains("relay") || !s["relay"].contains("port"))
    throw std::invalid_argument("the head at " + head + " runs no relay (it was started with --no-relay): tunnels go through it");
  const auto& relay = s["relay"];
  std::vector<int> allowed;
  if (relay.contains("tunnel_ports") && relay["tunnel_ports"].contains(node)) allowed = relay["tunnel_ports"][node].get<std::vector<int>>();
  if (std::find(allowed.begin(), allowed.end(), port) == allowed.end()) {
    std::string list;
    for (int p : allowed) list += (list.empty() ? "" : ",") + std::to_string(p);
    throw std::invalid_argument("node " + node + " does not allow tunnels to port " + std::to_string(port) +
                                (list.empty() ? " (it allows none: its owner starts it with iogrid node --allow-tunnel PORT,...)"
                                              : " (it allows " + list + ")"));
  }
  const auto relay_host = runtime::transport::parse_address(head).first;
  const auto relay_port = relay["port"].get<std::uint16_t>();

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(local));
  if (::inet_pton(AF_INET, bind.c_str(), &addr.sin_addr) != 1) throw std::invalid_argument("--bind takes an IPv4 address, got '" + bind + "'");
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 64) != 0)
    throw std::runtime_error("cannot listen on " + bind + ":" + std::to_string(local) + ": " + std::strerror(errno) +
                             " (choose another port with --local PORT)");
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::cout << "iogrid tunnel: " << bind << ":" << ntohs(addr.sin_port) << " -> " << node << ":" << port
            << " through the head's relay at " << relay_host << ":" << relay_port << " (Ctrl-C to stop)" << std::endl;
  const std::string name = runtime::transport::tunnel_relay_name(node, port);
  auto open = std::make_shared<std::atomic<int>>(0);
  for (;;) {
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    const int client = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      throw std::runtime_error(std::string("the local port stopped accepting: ") + std::strerror(errno));
    }
    char from[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &peer.sin_addr, from, sizeof from);
    const std::string who = std::string(from) + ":" + std::to_string(ntohs(peer.sin_port));
    std::thread([client, who, name, relay_host, relay_port, token, open] {
      std::string error;
      const int up = runtime::transport::dial_tcp(relay_host, relay_port, std::chrono::seconds(5), &error);
      if (up < 0) {
        std::cerr << "iogrid tunnel: connection from " << who << " dropped: cannot reach the head's relay: " << error << std::endl;
        ::close(client);
        return;
      }
      const auto hello = runtime::transport::relay_hello("CONNECT", name, token);
      if (::send(up, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size())) {
        ::close(up);
        ::close(client);
        return;
      }
      std::cerr << "iogrid tunnel: connection from " << who << " (" << ++*open << " open)" << std::endl;
      const auto bytes = runtime::transport::splice_tcp(client, up);
      std::cerr << "iogrid tunnel: connection from " << who << " closed, " << bytes << " bytes (" << --*open << " open)" << std::endl;
      ::close(up);
      ::close(client);
    }).detach();
  }
}

int job_command(const std::vector<std::string>& args) {
  const char* usage =
      "usage: iogrid job submit [--address HOST:PORT] [--token-file F] [--cluster ID] [--user U] [--weight W]\n"
      "                         -- PROGRAM [ARGS...]\n"
      "       iogrid job list [--address HOST:PORT] [--token-file F] [--json]\n"
      "       iogrid job logs ID [--address HOST:PORT] [--token-file F]\n"
      "       iogrid job stop ID [--address HOST:PORT] [--token-file F]\n"
      "submit runs PROGRAM as the job's driver against the cluster and streams its output (also kept by the head\n"
      "for `job logs`, with what the job's workers print); the program's own executable is shipped to the nodes\n"
      "that run its tasks. --cluster ID runs every task and actor of the job inside that reservation (iogrid cluster).\n"
      "--user and --weight set the job's fair share: when resources are short, users share by their weights\n"
      "(iogrid head --user-weights) and a user's jobs by theirs.\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return args.empty() ? 2 : 0;
  }
  std::string sub = args[0], address, token_file = default_token_path(), id, cluster;
  bool json = false;
  std::vector<std::string> program;
  for (Args a(args); ++a.i, !a.done();) {
    const auto f = a.peek();
    if (f == "--") {
      program.assign(args.begin() + static_cast<std::ptrdiff_t>(a.i) + 1, args.end());
      break;
    }
    if (f == "--address") address = a.value(f);
    else if (f == "--token-file") token_file = a.value(f);
    else if (f == "--json") json = true;
    else if (sub == "submit" && f == "--cluster") cluster = a.value(f);
    else if (sub == "submit" && f == "--user") setenv("IOGRID_USER", a.value(f).c_str(), 1);
    else if (sub == "submit" && f == "--weight") setenv("IOGRID_JOB_WEIGHT", std::to_string(number(f, a.value(f))).c_str(), 1);
    else if (tls_flag(a, f)) continue;
    else if ((sub == "stop" || sub == "logs") && id.empty() && f[0] != '-') id = f;
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid job " + sub + "\n" + usage);
  }
  auto addr = address_or_env(address);
  if (sub == "submit") {
    if (program.empty()) throw std::invalid_argument("iogrid job submit needs -- PROGRAM [ARGS...]");
    auto token = runtime::transport::load_token(token_file);  // fails early with a clear message
    if (!cluster.empty()) {
      // The cluster must exist now; the driver (and so every task it submits) runs inside it.
      std::string found;
      for (const auto& c : nlohmann::json::parse(runtime::cluster::admin(addr, token, "cluster.list", "{}")))
        if (c["id"].get<std::string>() == cluster || c["name"].get<std::string>() == cluster) found = c["id"].get<std::string>();
      if (found.empty()) throw std::invalid_argument("no cluster " + cluster + " on the head at " + addr + " (see iogrid cluster list)");
      setenv("IOGRID_CLUSTER", found.c_str(), 1);
    }
    return runtime::cluster::submit_job(addr, token, token_file, program);
  }
  auto token = token_or_create(token_file, false);
  if (sub == "list") {
    auto s = nlohmann::json::parse(runtime::cluster::cluster_status_json(addr, token));
    if (json) {
      std::cout << s["jobs"].dump() << "\n";
      return 0;
    }
    std::cout << std::left << std::setw(10) << "JOB" << std::setw(12) << "STATE" << std::setw(10) << "LEASES" << "DRIVER\n";
    for (const auto& j : s["jobs"])
      std::cout << std::setw(10) << j["id"].get<std::string>() << std::setw(12) << j["state"].get<std::string>()
                << std::setw(10) << j["leases_granted"].get<std::uint64_t>() << j["driver"].get<std::string>() << "\n";
    return 0;
  }
  if (sub == "logs") {
    if (id.empty()) throw std::invalid_argument("iogrid job logs needs a job id (see iogrid job list)");
    std::cout << runtime::cluster::job_logs(addr, token, id);
    return 0;
  }
  if (sub == "stop") {
    if (id.empty()) throw std::invalid_argument("iogrid job stop needs a job id (see iogrid job list)");
    std::cout << runtime::cluster::stop_job(addr, token, id) << "\n";
    return 0;
  }
  throw std::invalid_argument("unknown job command '" + sub + "'\n" + usage);
}

}  // namespace iogrid::cli
