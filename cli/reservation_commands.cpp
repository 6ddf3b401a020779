#include "cli/reservation_commands.hpp"
#include "cli/ledger_commands.hpp"

#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "runtime/cluster/cluster_client.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid::cli {

namespace {

const char* kClusterUsage =
    "usage: iogrid cluster create --gpus N [--gpu-model \"A100|H100\"] [--region R] [--max-price P]\n"
    "                             [--min-reputation R] [--duration 2h] [--cpus-per-gpu C] [--name NAME]\n"
    "                             [--any-region] [--strategy pack|spread|strict-pack|strict-spread] [--json]\n"
    "       iogrid cluster list [--json]\n"
    "       iogrid cluster delete ID\n"
    "  (each also takes --address HOST:PORT, --token-file F)\n"
    "A cluster is a reservation: N whole GPUs reserved at once as one gang (by default packed on few nodes;\n"
    "--strategy spread/strict-spread spreads them), in one region unless --any-region, charged per GPU-hour at\n"
    "the providers' prices until deleted or --duration ends.\n"
    "Run work inside it with `iogrid job submit --cluster ID -- PROGRAM` or TaskOptions::cluster. A request\n"
    "that cannot be met says which constraint failed and what the closest offer is.\n";

std::string flag_value(const std::vector<std::string>& a, std::size_t& i) {
  if (i + 1 >= a.size()) throw std::invalid_argument(a[i] + " needs a value");
  return a[++i];
}

double number(const std::string& flag, const std::string& v) {
  try {
    std::size_t used = 0;
    double d = std::stod(v, &used);
    if (used == v.size() && d >= 0) return d;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + " needs a non-negative number, got '" + v + "'");
}

struct Connection {
  std::string address, token_file = runtime::transport::default_token_path();
  bool take(const std::vector<std::string>& a, std::size_t& i) {
    if (a[i] == "--address") return address = flag_value(a, i), true;
    if (a[i] == "--token-file") return token_file = flag_value(a, i), true;
    return false;
  }
  std::string admin(const std::string& command, const nlohmann::json& args) const {
    std::string addr = address;
    if (addr.empty())
      if (const char* e = std::getenv("IOGRID_ADDRESS"); e && *e) addr = e;
    if (addr.empty()) throw std::invalid_argument("no head address: pass --address HOST:PORT or set IOGRID_ADDRESS");
    return runtime::cluster::admin(addr, runtime::transport::load_token(token_file), command, args.dump());
  }
};

std::string money(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << v;
  return os.str();
}

void print_cluster(const nlohmann::json& c) {
  std::cout << c["id"].get<std::string>();
  if (c["name"].get<std::string>() != c["id"].get<std::string>()) std::cout << " (" << c["name"].get<std::string>() << ")";
  std::cout << ": " << c["gpus"].get<int>() << " GPU(s)";
  const auto region = c["region"].get<std::string>();
  if (region == "several") std::cout << " across regions";
  else if (!region.empty()) std::cout << " in " << region;
  std::cout << ", " << money(c["price_per_hour"].get<double>()) << "/h";
  if (c["expires_in_s"].is_number()) std::cout << ", expires in " << static_cast<long>(c["expires_in_s"].get<double>()) << " s";
  std::cout << "\n";
  for (const auto& n : c["nodes"])
    std::cout << "  " << n["node"].get<std::string>() << ": " << n["gpus"].get<int>() << " x " << n["model"].get<std::string>() << "\n";
}

}  // namespace

double parse_duration_s(const std::string& flag, const std::string& v) {
  if (v.empty()) throw std::invalid_argument(flag + " needs a duration such as 90s, 30m, 2h or 1d");
  double unit = 1;
  std::string digits = v;
  switch (v.back()) {
    case 's': unit = 1; digits.pop_back(); break;
    case 'm': unit = 60; digits.pop_back(); break;
    case 'h': unit = 3600; digits.pop_back(); break;
    case 'd': unit = 86400; digits.pop_back(); break;
    default: break;
  }
  try {
    return number(flag, digits) * unit;
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument(flag + " needs a duration such as 90s, 30m, 2h or 1d, got '" + v + "'");
  }
}

int cluster_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kClusterUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string sub = args[0];
  Connection conn;
  nlohmann::json spec = nlohmann::json::object();
  std::string id;
  bool json = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& f = args[i];
    if (f == "--help" || f == "-h") {
      std::cout << kClusterUsage;
      return 0;
    }
    if (conn.take(args, i)) continue;
    if (f == "--json") json = true;
    else if (sub == "create" && f == "--gpus") spec["gpus"] = number(f, flag_value(args, i));
    else if (sub == "create" && f == "--gpu-model") spec["gpu_model"] = flag_value(args, i);
    else if (sub == "create" && f == "--region") spec["region"] = flag_value(args, i);
    else if (sub == "create" && f == "--max-price") spec["max_price"] = number(f, flag_value(args, i));
    else if (sub == "create" && f == "--min-reputation") spec["min_reputation"] = number(f, flag_value(args, i));
    else if (sub == "create" && f == "--duration") spec["duration_s"] = parse_duration_s(f, flag_value(args, i));
    else if (sub == "create" && f == "--cpus-per-gpu") spec["cpus_per_gpu"] = number(f, flag_value(args, i));
    else if (sub == "create" && f == "--name") spec["name"] = flag_value(args, i);
    else if (sub == "create" && f == "--any-region") spec["any_region"] = true;
    else if (sub == "create" && f == "--strategy") spec["strategy"] = flag_value(args, i);
    else if (sub == "delete" && id.empty() && f[0] != '-') id = f;
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid cluster " + sub + "\n" + kClusterUsage);
  }
  if (sub == "create") {
    if (!spec.contains("gpus")) throw std::invalid_argument("iogrid cluster create needs --gpus N");
    auto c = nlohmann::json::parse(conn.admin("cluster.create", spec));
    if (json) std::cout << c.dump() << "\n";
    else {
      std::cout << "reserved ";
      print_cluster(c);
      std::cout << "run a job inside it: iogrid job submit --cluster " << c["id"].get<std::string>() << " -- PROGRAM\n";
    }
    return 0;
  }
  if (sub == "list") {
    auto l = nlohmann::json::parse(conn.admin("cluster.list", nlohmann::json::object()));
    if (json) std::cout << l.dump() << "\n";
    else if (l.empty()) std::cout << "no clusters (iogrid cluster create --gpus N ...)\n";
    else
      for (const auto& c : l) print_cluster(c);
    return 0;
  }
  if (sub == "delete") {
    if (id.empty()) throw std::invalid_argument("iogrid cluster delete needs a cluster id (see iogrid cluster list)");
    auto r = nlohmann::json::parse(conn.admin("cluster.delete", {{"id", id}}));
    std::cout << "deleted " << r["deleted"].get<std::string>() << "\n";
    return 0;
  }
  throw std::invalid_argument("unknown cluster command '" + sub + "'\n" + kClusterUsage);
}

int verify_command(const std::vector<std::string>& args) {
  Connection conn;
  nlohmann::json a = nlohmann::json::object();
  bool json = false;
  double wait_s = 600;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << "usage: iogrid verify [--node NAME] [--size N] [--timeout S] [--address HOST:PORT] [--token-file F] [--json]\n"
                   "Challenges every GPU of a node (default: every node with GPUs): a seeded N x N GEMM (default 8192)\n"
                   "is run and timed there; the head checks rows drawn after the node committed to its answer against\n"
                   "its own, and the throughput against what the claimed model can do. A GPU that fails (wrong answer,\n"
                   "too fast to be honest, far slower than its model) is marked unverified and gets no GPU work unless\n"
                   "a request allows unverified GPUs; the verdict shows in iogrid status.\n";
      return 0;
    }
    if (conn.take(args, i)) continue;
    if (args[i] == "--node") a["node"] = flag_value(args, i);
    else if (args[i] == "--size") a["size"] = static_cast<int>(number(args[i], flag_value(args, i)));
    else if (args[i] == "--timeout") wait_s = number(args[i], flag_value(args, i));
    else if (args[i] == "--json") json = true;
    else throw std::invalid_argument("unknown option '" + args[i] + "' for iogrid verify");
  }
  std::string addr = conn.address;
  if (addr.empty())
    if (const char* e = std::getenv("IOGRID_ADDRESS"); e && *e) addr = e;
  if (addr.empty()) throw std::invalid_argument("no head address: pass --address HOST:PORT or set IOGRID_ADDRESS");
  auto results = nlohmann::json::parse(runtime::cluster::admin(addr, runtime::transport::load_token(conn.token_file), "verify",
                                                               a.dump(), std::chrono::seconds(static_cast<long>(wait_s))));
  if (json) {
    std::cout << results.dump() << "\n";
    return 0;
  }
  int failed = 0;
  for (const auto& r : results) {
    std::cout << r["node"].get<std::string>() << " GPU " << r["device"].get<int>() << ": "
              << (r["verified"].get<bool>() ? "verified, " : "UNVERIFIED, ") << r["reason"].get<std::string>() << "\n";
    failed += r["verified"].get<bool>() ? 0 : 1;
  }
  return failed ? 1 : 0;
}

int ledger_command(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "verify") return ledger_verify_command({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "entries") return ledger_entries_command({args.begin() + 1, args.end()});
  Connection conn;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << "usage: iogrid ledger [--address HOST:PORT] [--token-file F] [--json]\n"
                   "       iogrid ledger verify --state DIR      (the journal's chain and signatures: --help)\n"
                   "       iogrid ledger entries --state DIR     (entries, statements, CSV: --help)\n"
                   "GPU-seconds and cost (GPU-seconds x price per GPU-hour) per job, cluster (reservation) and\n"
                   "provider node. Reservations are charged for every reserved GPU while they exist; jobs inside one\n"
                   "show their GPU-seconds at no extra cost.\n";
      return 0;
    }
    if (conn.take(args, i)) continue;
    if (args[i] == "--json") json = true;
    else throw std::invalid_argument("unknown option '" + args[i] + "' for iogrid ledger");
  }
  auto l = nlohmann::json::parse(conn.admin("ledger", nlohmann::json::object()));
  if (json) {
    std::cout << l.dump() << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(13) << "KIND" << std::setw(24) << "NAME" << std::right << std::setw(14)
            << "GPU-SECONDS" << std::setw(12) << "COST" << "\n";
  for (const auto& e : l)
    std::cout << std::left << std::setw(13) << e["kind"].get<std::string>() << std::setw(24) << e["name"].get<std::string>()
              << std::right << std::setw(14) << std::fixed << std::setprecision(1) << e["gpu_seconds"].get<double>()
              << std::setw(12) << std::setprecision(4) << e["cost"].get<double>() << "\n";
  if (l.empty()) std::cout << "(nothing charged yet)\n";
  return 0;
}

}  // namespace iogrid::cli
