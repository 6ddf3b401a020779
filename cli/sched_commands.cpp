#include "cli/sched_commands.hpp"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "scheduler/replay.hpp"
#include "scheduler/trace.hpp"

namespace iogrid::cli {

namespace {

const char* kUsage =
    "usage: iogrid sched generate --nodes N --tasks M [--seed S] [--mix default|sharing] --out DIR\n"
    "           writes DIR/nodes.csv and DIR/tasks.csv: a synthetic heterogeneous GPU cluster and its workload\n"
    "           (--mix sharing: mostly large GPU fractions and CPU-hungry tasks, where leftovers strand easily)\n"
    "       iogrid sched replay --nodes NODES.csv --tasks TASKS.csv [--policy NAME[,NAME...]] [--inflate X] [--json]\n"
    "           replays the trace through the scheduler: tasks placed and failed, GPU allocation ratio as arrived work\n"
    "           grows, fragmented share of free GPU capacity, decisions per second, p50/p99 decision latency.\n"
    "           Policies: pack (= best-fit), fgd (fragmentation-aware), market, dot-product, first-fit, spread,\n"
    "           random. --inflate X: tasks never leave and arrivals\n"
    "           cycle until X times the cluster's GPUs have arrived (the saturation study).\n";

std::string value(const std::vector<std::string>& a, std::size_t& i) {
  if (i + 1 >= a.size()) throw std::invalid_argument(a[i] + " needs a value");
  return a[++i];
}

std::ifstream open_or_throw(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read " + path);
  return in;
}

}  // namespace

int sched_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const auto sub = args[0];
  if (sub == "generate") {
    std::size_t nodes = 0, tasks = 0;
    std::uint64_t seed = 1;
    std::string out;
    auto mix = sched::TraceMix::standard;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--help" || args[i] == "-h") {
        std::cout << kUsage;
        return 0;
      }
      if (args[i] == "--mix") mix = sched::parse_mix(value(args, i));
      else if (args[i] == "--nodes") nodes = std::stoul(value(args, i));
      else if (args[i] == "--tasks") tasks = std::stoul(value(args, i));
      else if (args[i] == "--seed") seed = std::stoull(value(args, i));
      else if (args[i] == "--out") out = value(args, i);
      else throw std::invalid_argument("unknown option '" + args[i] + "' for sched generate\n" + kUsage);
    }
    if (nodes == 0 || tasks == 0 || out.empty()) throw std::invalid_argument("sched generate needs --nodes, --tasks and --out");
    auto t = sched::generate_trace(nodes, tasks, seed, mix);
    std::filesystem::create_directories(out);
    std::ofstream n(std::filesystem::path(out) / "nodes.csv"), k(std::filesystem::path(out) / "tasks.csv");
    sched::write_nodes_csv(n, t.nodes);
    sched::write_tasks_csv(k, t.tasks);
    std::cout << "wrote " << nodes << " nodes and " << tasks << " tasks to " << out << "/{nodes,tasks}.csv\n";
    return 0;
  }
  if (sub == "replay") {
    std::string nodes_path, tasks_path, policies = "pack";
    double inflate = 0;
    bool json = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--help" || args[i] == "-h") {
        std::cout << kUsage;
        return 0;
      }
      if (args[i] == "--nodes") nodes_path = value(args, i);
      else if (args[i] == "--tasks") tasks_path = value(args, i);
      else if (args[i] == "--policy") policies = value(args, i);
      else if (args[i] == "--inflate") inflate = std::stod(value(args, i));
      else if (args[i] == "--json") json = true;
      else throw std::invalid_argument("unknown option '" + args[i] + "' for sched replay\n" + kUsage);
    }
    if (nodes_path.empty() || tasks_path.empty()) throw std::invalid_argument("sched replay needs --nodes and --tasks");
    auto nin = open_or_throw(nodes_path);
    auto tin = open_or_throw(tasks_path);
    std::vector<sched::TraceNode> nodes;
    std::vector<sched::TraceTask> tasks;
    try {
      nodes = sched::read_nodes_csv(nin);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(nodes_path + ": " + e.what());
    }
    try {
      tasks = sched::read_tasks_csv(tin);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(tasks_path + ": " + e.what());
    }
    std::stringstream list(policies);
    for (std::string name; std::getline(list, name, ',');) {
      auto policy = sched::make_policy(name);
      auto r = sched::replay(nodes, tasks, *policy, inflate, [] { return std::chrono::steady_clock::now(); });
      if (json) {
        nlohmann::json j{{"policy", r.policy},
                         {"placed", r.placed},
                         {"failed", r.failed},
                         {"gpu_placed", r.gpu_placed},
                         {"gpu_failed", r.gpu_failed},
                         {"final_allocated_gpu_ratio", r.final_allocated_gpu_ratio},
                         {"final_fragmented_share", r.final_fragmented_share},
                         {"decisions_per_s", r.decisions_per_s},
                         {"p50_decision_ms", r.p50_ms},
                         {"p99_decision_ms", r.p99_ms}};
        j["curve"] = nlohmann::json::array();
        for (const auto& p : r.curve)
          j["curve"].push_back({{"arrived", p.arrived_gpu_ratio}, {"allocated", p.allocated_gpu_ratio}, {"fragmented", p.fragmented_share}});
        std::cout << j.dump() << "\n";
        continue;
      }
      std::cout << std::fixed << std::setprecision(3) << "policy " << r.policy << ": placed " << r.placed << ", failed "
                << r.failed << " (GPUs placed " << r.gpu_placed << ", failed " << r.gpu_failed << ")\n"
                << "  final GPU allocation " << r.final_allocated_gpu_ratio << ", fragmented share of free GPU "
                << r.final_fragmented_share << "\n"
                << "  " << std::setprecision(0) << r.decisions_per_s << " decisions/s, p50 " << std::setprecision(4)
                << r.p50_ms << " ms, p99 " << r.p99_ms << " ms\n  arrived -> allocated (fragmented):";
      for (std::size_t i = 0; i < r.curve.size(); i += std::max<std::size_t>(1, r.curve.size() / 10))
        std::cout << std::setprecision(2) << " " << r.curve[i].arrived_gpu_ratio << "->" << r.curve[i].allocated_gpu_ratio
                  << " (" << r.curve[i].fragmented_share << ")";
      std::cout << "\n";
    }
    return 0;
  }
  throw std::invalid_argument("unknown sched command '" + sub + "'\n" + kUsage);
}

}  // namespace iogrid::cli
