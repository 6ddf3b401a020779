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
    "usage: iogrid cluster create --gpus N [--gpu-model \"A100|H100\"] [--region R] [--max-price P] [--tier T]\n"
    "                             [--min-reputation R] [--duration 2h] [--cpus-per-gpu C] [--name NAME]\n"
    "                             [--any-region] [--strategy pack|spread|strict-pack|strict-spread] [--json]\n"
    "       iogrid cluster list [--json]\n"
    "       iogrid cluster delete ID\n"
    "  (each also takes --address HOST:PORT, --token-file F)\n"
    "A cluster is a reservation: N whole GPUs reserved at once as one gang (by default packed on few nodes;\n"
    "--strategy spread/strict-spread spreads them), in one region unless --any-region, charged per GPU-hour at\n"
    "the price locked when it is made (its market's posted price, `iogrid market`, x the tier: spot 0.6,\n"
    "standard 1, urgent 1.5; only providers asking at most that take part) until deleted or --duration ends.\n"
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
    else if (sub == "create" && f == "--tier") spec["tier"] = flag_value(args, i);
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
  if (!args.empty() && args[0] == "provenance") return ledger_provenance_command({args.begin() + 1, args.end()});
  Connection conn;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      std::cout << "usage: iogrid ledger [--address HOST:PORT] [--token-file F] [--json]\n"
                   "       iogrid ledger verify --state DIR      (the journal's chain and signatures: --help)\n"
                   "       iogrid ledger entries --state DIR     (entries, statements, CSV: --help)\n"
                   "       iogrid ledger provenance --state DIR --job J   (who ran a job's work, spot checks)\n"
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

namespace iogrid::cli {

int market_command(const std::vector<std::string>& args) {
  Connection conn;
  bool json = false, want_quote = false;
  nlohmann::json q{{"tier", "standard"}, {"gpus", 1.0}, {"hours", 1.0}, {"max_price", 0.0}, {"region", ""}};
  int points = 12;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& f = args[i];
    if (f == "--help" || f == "-h") {
      std::cout << "usage: iogrid market [--address HOST:PORT] [--token-file F] [--history N] [--json]\n"
                   "       iogrid market --quote --model M [--region R] [--gpus N] [--hours H] [--tier spot|standard|urgent]\n"
                   "                     [--max-price P]\n"
                   "Posted prices per GPU model and region ($ per GPU-hour), moved every pricing round (iogrid head\n"
                   "--pricing-round-ms, default 60 s) by the controller in scheduler/pricing.hpp: up when utilisation is\n"
                   "above 0.8 or work waits, down when below, at most 12.5% a round, between $0.05 and $50. With the\n"
                   "last N rounds of each (default 12). --quote prices a request: the tier's price (spot 0.6x, standard\n"
                   "1x, urgent 1.5x the posted price), the total for the GPUs and hours, how long the quote holds, and\n"
                   "whether --max-price covers it. Also at /api/v1/market on the dashboard's port (public).\n"
                   "Placement and charges still use each node's own price: the posted price does not bind yet.\n";
      return 0;
    }
    if (conn.take(args, i)) continue;
    auto value = [&] { return flag_value(args, i); };
    auto number = [&](const std::string& flag) {
      const auto v = value();
      try {
        return std::stod(v);
      } catch (...) {
        throw std::invalid_argument(flag + " takes a number, got '" + v + "'");
      }
    };
    if (f == "--json") json = true;
    else if (f == "--quote") want_quote = true;
    else if (f == "--model") q["model"] = value();
    else if (f == "--region") q["region"] = value();
    else if (f == "--gpus") q["gpus"] = number(f);
    else if (f == "--hours") q["hours"] = number(f);
    else if (f == "--tier") q["tier"] = value();
    else if (f == "--max-price") q["max_price"] = number(f);
    else if (f == "--history") points = static_cast<int>(number(f));
    else throw std::invalid_argument("unknown option '" + f + "' for iogrid market (see iogrid market --help)");
  }
  if (want_quote && !q.contains("model")) throw std::invalid_argument("--quote needs --model (a GPU model, e.g. A100)");
  nlohmann::json a{{"history", std::max(0, points)}};
  if (want_quote) a["quote"] = q;
  auto m = nlohmann::json::parse(conn.admin("market", a));
  if (json) {
    std::cout << m.dump() << "\n";
    return 0;
  }
  std::cout << std::left << std::setw(24) << "MARKET" << std::right << std::setw(10) << "$/GPU-H" << std::setw(8) << "USE"
            << "  LAST ROUNDS\n";
  for (const auto& mk : m["markets"]) {
    std::ostringstream use, trail;
    use << std::fixed << std::setprecision(2) << mk["utilisation"].get<double>();
    for (const auto& p : mk["history"]) trail << " " << money(p["price"].get<double>());
    std::cout << std::left << std::setw(24) << mk["market"].get<std::string>() << std::right << std::setw(10)
              << money(mk["price"].get<double>()) << std::setw(8) << use.str() << " " << trail.str() << "\n";
  }
  if (m["markets"].empty()) std::cout << "(no GPU markets yet: prices appear after the first pricing round with GPU nodes)\n";
  if (m.contains("quote")) {
    const auto& qt = m["quote"];
    std::cout << "\nquote: " << qt["gpus"].get<double>() << " GPU(s) of " << qt["market"].get<std::string>() << " for "
              << qt["hours"].get<double>() << " h, " << qt["tier"].get<std::string>() << ": $" << money(qt["price_per_gpu_hour"].get<double>())
              << "/GPU-h, $" << money(qt["total"].get<double>()) << " in all, valid for "
              << (qt["valid_until_ms"].get<std::int64_t>() - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                              std::chrono::system_clock::now().time_since_epoch()).count()) / 1000
              << " s" << (qt["within_max_price"].get<bool>() ? "" : " (above --max-price: such a request would wait)") << "\n";
  }
  return 0;
}

}  // namespace iogrid::cli
