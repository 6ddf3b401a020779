#include "cli/sched_commands.hpp"

#include <algorithm>
#include <filesystem>
#include <functional>
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
    "usage: iogrid sched generate --nodes N --tasks M [--seed S] [--mix default|sharing|constrained] [--dense] --out DIR\n"
    "           writes DIR/nodes.csv and DIR/tasks.csv: a synthetic heterogeneous GPU cluster and its workload in the\n"
    "           proportions of production GPU-sharing traces (2-8 GPU machines of seven models; 13% CPU-only tasks,\n"
    "           37% shares of one GPU, 46% whole GPUs, 4% several). --mix sharing: every single-GPU task shares its\n"
    "           GPU; --mix constrained: a third of the GPU tasks accept one model or family only. --dense: every\n"
    "           node an 8-GPU machine of one of six models with 64-128 CPUs (the scale bench's cluster).\n"
    "       iogrid sched replay --nodes NODES.csv --tasks TASKS.csv [--policy NAME[,NAME...]] [--order trace|random]\n"
    "                           [--seeds S[,S...]] [--gpu-only] [--inflate X] [--expect-workload] [--json]\n"
    "           replays the trace through the scheduler: tasks placed and failed, the GPU share allocated when the\n"
    "           arrived GPU work reaches 100% of the cluster's GPUs and at the end, the unallocated share, the\n"
    "           fragmented share of free GPU capacity, decisions per second and p50/p99 decision latency.\n"
    "           Policies: pack (= best-fit), exhaustive-best-fit (scores every node: the reference), fgd\n"
    "           (fragmentation-aware), fgd-exhaustive (fgd without its search cut), market, dot-product,\n"
    "           first-fit, spread, random.\n"
    "           --order trace (default): by creation time, tasks leave at their deletion time; --order random:\n"
    "           a seeded shuffle, tasks never leave (the FGD paper's protocol); --seeds 1,2,3 runs each seed and\n"
    "           reports mean and range. --gpu-only skips tasks without GPUs. --inflate X: tasks never leave and\n"
    "           arrivals cycle until X times the cluster's GPUs have arrived (the paper uses 1.3).\n"
    "           --expect-workload: fgd starts from the trace's task shapes instead of learning them as they come.\n"
    "           Trace columns (by header name, any order, others ignored): nodes need cpu_milli and gpu\n"
    "           (sn, memory_mib, model, region, price, reputation optional); tasks need cpu_milli and num_gpu\n"
    "           (name, memory_mib, gpu_milli, gpu_spec, qos, region, max_price, creation_time, deletion_time optional).\n";

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
    bool dense = false;
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
      else if (args[i] == "--dense") dense = true;
      else throw std::invalid_argument("unknown option '" + args[i] + "' for sched generate\n" + kUsage);
    }
    if (nodes == 0 || tasks == 0 || out.empty()) throw std::invalid_argument("sched generate needs --nodes, --tasks and --out");
    auto t = sched::generate_trace(nodes, tasks, seed, mix, dense);
    std::filesystem::create_directories(out);
    std::ofstream n(std::filesystem::path(out) / "nodes.csv"), k(std::filesystem::path(out) / "tasks.csv");
    sched::write_nodes_csv(n, t.nodes);
    sched::write_tasks_csv(k, t.tasks);
    std::cout << "wrote " << nodes << " nodes and " << tasks << " tasks to " << out << "/{nodes,tasks}.csv\n";
    return 0;
  }
  if (sub == "replay") {
    std::string nodes_path, tasks_path, policies = "pack";
    sched::ReplayOptions opts;
    std::vector<std::uint64_t> seeds{1};
    bool json = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--help" || args[i] == "-h") {
        std::cout << kUsage;
        return 0;
      }
      if (args[i] == "--nodes") nodes_path = value(args, i);
      else if (args[i] == "--tasks") tasks_path = value(args, i);
      else if (args[i] == "--policy") policies = value(args, i);
      else if (args[i] == "--inflate") opts.inflate = std::stod(value(args, i));
      else if (args[i] == "--order") {
        auto o = value(args, i);
        if (o == "trace") opts.order = sched::ReplayOptions::Order::trace;
        else if (o == "random") opts.order = sched::ReplayOptions::Order::random;
        else throw std::invalid_argument("--order must be trace or random, not '" + o + "'");
      } else if (args[i] == "--seeds" || args[i] == "--seed") {
        seeds.clear();
        std::stringstream ss(value(args, i));
        for (std::string one; std::getline(ss, one, ',');) seeds.push_back(std::stoull(one));
        if (seeds.empty()) throw std::invalid_argument("--seeds needs at least one seed");
      } else if (args[i] == "--gpu-only") opts.gpu_only = true;
      else if (args[i] == "--expect-workload") opts.expect_workload = true;
      else if (args[i] == "--json") json = true;
      else throw std::invalid_argument("unknown option '" + args[i] + "' for sched replay\n" + kUsage);
    }
    if (nodes_path.empty() || tasks_path.empty()) throw std::invalid_argument("sched replay needs --nodes and --tasks");
    if (opts.inflate < 0 || !(opts.inflate < 1000)) throw std::invalid_argument("--inflate must be within 0..1000");
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
      std::vector<sched::ReplayResult> runs;
      for (auto seed : seeds) {
        auto policy = sched::make_policy(name, seed);
        opts.seed = seed;
        runs.push_back(sched::replay(nodes, tasks, *policy, opts, [] { return std::chrono::steady_clock::now(); }));
      }
      struct Stat {
        double mean = 0, lo = 0, hi = 0;
      };
      auto stat = [&](const std::function<double(const sched::ReplayResult&)>& f) {
        Stat st{0, f(runs[0]), f(runs[0])};
        for (const auto& r : runs) {
          st.mean += f(r) / double(runs.size());
          st.lo = std::min(st.lo, f(r));
          st.hi = std::max(st.hi, f(r));
        }
        return st;
      };
      const auto alloc = stat([](const auto& r) { return r.final_allocated_gpu_ratio; });
      const auto unalloc = stat([](const auto& r) { return r.unallocated(); });
      const auto at100 = stat([](const auto& r) { return r.allocated_at_100; });
      const auto frag = stat([](const auto& r) { return r.final_fragmented_share; });
      const auto frag100 = stat([](const auto& r) { return r.fragmented_at_100; });
      const auto rate = stat([](const auto& r) { return r.decisions_per_s; });
      const auto p99 = stat([](const auto& r) { return r.p99_ms; });
      if (json) {
        auto js = [](const Stat& st) { return nlohmann::json{{"mean", st.mean}, {"min", st.lo}, {"max", st.hi}}; };
        nlohmann::json j{{"policy", runs[0].policy},
                         {"order", opts.order == sched::ReplayOptions::Order::random ? "random" : "trace"},
                         {"seeds", seeds},
                         {"gpu_only", opts.gpu_only},
                         {"inflate", opts.inflate},
                         {"allocated_at_100", js(at100)},
                         {"fragmented_at_100", js(frag100)},
                         {"final_allocated_gpu_ratio", js(alloc)},
                         {"unallocated_gpu_share", js(unalloc)},
                         {"final_fragmented_share", js(frag)},
                         {"decisions_per_s", js(rate)},
                         {"p99_decision_ms", js(p99)}};
        j["runs"] = nlohmann::json::array();
        for (const auto& r : runs) {
          nlohmann::json one{{"placed", r.placed},
                             {"failed", r.failed},
                             {"gpu_placed", r.gpu_placed},
                             {"gpu_failed", r.gpu_failed},
                             {"final_allocated_gpu_ratio", r.final_allocated_gpu_ratio},
                             {"allocated_at_100", r.allocated_at_100},
                             {"final_fragmented_share", r.final_fragmented_share},
                             {"decisions_per_s", r.decisions_per_s},
                             {"p50_decision_ms", r.p50_ms},
                             {"p99_decision_ms", r.p99_ms}};
          one["curve"] = nlohmann::json::array();
          for (const auto& p : r.curve)
            one["curve"].push_back({{"arrived", p.arrived_gpu_ratio}, {"allocated", p.allocated_gpu_ratio}, {"fragmented", p.fragmented_share}});
          j["runs"].push_back(std::move(one));
        }
        std::cout << j.dump() << "\n";
        continue;
      }
      auto show = [](const Stat& st, int digits) {
        std::ostringstream os;
        os << std::fixed << std::setprecision(digits) << st.mean;
        if (st.hi > st.lo) os << " (" << st.lo << "-" << st.hi << ")";
        return os.str();
      };
      const auto& r = runs[0];
      std::cout << "policy " << r.policy << (runs.size() > 1 ? " (mean and range of " + std::to_string(runs.size()) + " seeds)" : "")
                << ": placed " << r.placed << ", failed " << r.failed << std::fixed << std::setprecision(1) << " (GPUs placed "
                << r.gpu_placed << ", failed " << r.gpu_failed << (runs.size() > 1 ? ", first seed" : "") << ")\n"
                << "  GPU allocated at 100% arrived " << show(at100, 3) << ", at the end " << show(alloc, 3)
                << "; unallocated " << show(unalloc, 3) << "\n"
                << "  fragmented share of free GPU at 100% " << show(frag100, 3) << ", at the end " << show(frag, 3) << "\n"
                << "  " << show(rate, 0) << " decisions/s, p99 " << show(p99, 4) << " ms\n  arrived -> allocated (fragmented):";
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
