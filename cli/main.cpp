// The `iogrid` command line.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "gpu/devices.hpp"
#include "bench/report.hpp"
#include "cli/cluster_commands.hpp"
#include "cli/reservation_commands.hpp"
#include "cli/sched_commands.hpp"
#include "runtime/cluster/worker_env.hpp"

namespace {

const char* kUsage = R"(iogrid: an actor runtime that pools heterogeneous GPUs into clusters.

usage: iogrid <command> [options]

commands:
  bench micro [--mode embedded|cluster] [--json] [--runs N] [--seconds S] [--only NAME[,NAME...]]
      Ray's core microbenchmarks on the embedded cluster, or (--mode cluster) on a head and two node processes
      started on this machine for the run. --json prints one JSON line per figure:
      {"suite","name","value","unit","higher_is_better","mode"}. Each figure is the median of N runs (default 5).
  bench scale [--json] [--runs N] [--only NAME[,NAME...]]
      The scheduler at 10,000 nodes / 80,000 GPUs: placement decisions/s and p99 latency (library alone and
      inside the head actor), gang create/remove per second, bytes per queued task, replay of a 1M-task trace,
      and fragmentation-aware placement against best fit at saturation. Takes a few minutes.
  bench gpu [--json] [--runs N] [--only NAME[,NAME...]]
      The GPU layer: allreduce of 64 MiB f32 over 4 ranks (threads) through iogrid's collective group, with its
      Gloo backend and with its local (shared-memory) backend, against Gloo called directly in the same run
      (ratios and bus bandwidths); on a GPU machine, the GPU rows (bf16 GEMM as a task against cuBLAS, the empty
      GPU task's round trip, the verification challenge, NCCL allreduce bus bandwidth across the GPUs present).
  A name given to --only that the suite does not have is an error listing the suite's figures.
  bench workloads [--json] [--runs N] [--only NAME[,NAME...]]
      The workloads on Fashion-MNIST: test accuracy of the bundled MLP trained by 2 workers, samples/s of 2
      workers against 1, batch inference through a pool of actors against one plain loop, a 32-trial sweep
      with ASHA against the full grid (trial-time ratio, accuracy gap), test accuracy of the small CNN, and the
      MLP's training and inference rates against PyTorch on the same data (on the CPU, and on GPU 0 where there
      is one; needs a python3 with PyTorch, e.g. Debian's python3-torch, or $IOGRID_PYTHON). Several minutes
      per run; --only picks figures, e.g. --only train_vs_pytorch_cpu_samples_ratio.
  bench chaos [--minutes M] [--json] [--runs N] [--only NAME[,NAME...]]
      Cluster mode under work it must survive: a recursive program of depth 16 (65,535 tasks) embedded and on a
      head with two 2-CPU nodes (seconds, and the most worker processes a node ran), then a chaos run of M
      minutes (default 1): head and four nodes under a mixed workload while nodes are killed, frozen and
      restarted and the head is killed once; every result checked (wrong results and false deaths must be 0).
  bench users [--drivers N] [--tasks T] [--big B] [--pollers P] [--queued Q] [--fair-quantum-ms MS] [--json] [--only NAME[,NAME...]]
      Cluster mode under many users (head and two 2-CPU nodes here): N driver processes at once (default 32),
      each running T small tasks (20,000) and B tasks with 8 MiB results (200), every result checked, while P
      clients (20) poll the status API: wrong/lost results, wall time, slowest over fastest driver, status
      latency p50/p99/max, head and node memory before, at the peak and after; then one driver with Q tasks
      (1,000,000) queued at once: seconds and peak memory of head, nodes and driver. Takes several minutes.
  bench ui [--nodes N] [--tasks T] [--runs R] [--json] [--only NAME[,NAME...]]
      The web UI and its API in front of a head holding N nodes (10,000) heartbeating with GPU telemetry and T
      task spans (100,000), simulated at the head's interface in this process: first meaningful paint of each
      view in headless chromium, a node's death from the head to the page, this process's CPU with 50 tabs
      open, API p50/p99 at 200 requests/s, the full status document's latency and size. The browser rows need
      node, ui/node_modules and chromium (scripts/setup). About two minutes.
  bench net [--runs N] [--seconds S] [--json] [--only NAME[,NAME...]]
      Connections across NATs (as root: the hosts are network namespaces): a head, a 2-CPU node on the lab's
      network and one behind a cone NAT. A driver run twice, on the lab's network (workers dial it) and behind a
      cone NAT (they come through the head's relay): the median empty-task round trip of each (2,000 x S
      sequential tasks) and their ratio; a 1 GiB object (x S when S < 1) pulled from each node (direct, and
      through the relay) with their throughput ratio and the time from the failed dial to the relayed pull; the
      relay's resident bytes per idle spliced connection.
  bench market [--runs N] [--seconds S] [--json] [--only NAME[,NAME...]]
      The market's figures: the ledger's journal (entries appended per second in batches of 10,000, a signed
      checkpoint after each; the seconds `iogrid ledger verify` takes over 1,000,000 entries); a seeded market
      simulation on the real scheduler (supply shock recovery, price volatility, cost against a fixed price,
      providers' earnings fairness, shading gain); spot checks on the embedded runtime (a provider wrong on 2%
      of its tasks, 5% checked: the share of 1,000 trials caught within 5,000 of its tasks, and the extra runs).
      S < 1 scales the journal to S million entries and the spot-check trials down, for tests.
  sched generate|replay ...
      Synthetic cluster traces, and replay of a trace through the scheduler's policies (see iogrid sched --help).
  version
      Prints the version.
  help
      Prints this text.

cluster commands (each takes --help):
  head [--port P] [--token-file F] ...         start the head of a cluster; prints how to join it
  node --address HOST:PORT [--gpus ...] ...    join this machine to a cluster
  status [--address HOST:PORT] [--json]        nodes, resources, GPUs, jobs and queued work
  tunnel NODE:PORT [--local PORT]              forward a local port to a port a node allows, through the relay
  job submit|list|logs|stop ...                run a program as a job on the cluster; list, read or stop jobs
  cluster create|list|delete ...               reserve GPUs as a cluster (a gang, priced per GPU-hour); jobs run inside
  ledger [verify|entries|provenance]           GPU-seconds and cost per job, cluster and provider node; the journal
  market [--quote --model M ...]               posted prices per GPU model and region, their history, a quote
  verify [--node NAME] [--size N]              challenge nodes' GPUs (seeded GEMM, checked by the head)
  ui-key add NAME | list | remove NAME         keys that log people in to the head's dashboard (web UI)
The head address can also come from IOGRID_ADDRESS, the token file from IOGRID_TOKEN_FILE (default ~/.iogrid/token).
)";

int bench(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  iogrid::bench::Options o;
  const std::string suite = args[0];
  double minutes = 1;
  iogrid::bench::UsersOptions users;
  int ui_nodes = 10000;
  std::uint64_t ui_tasks = 100000;
  if (suite == "net-driver") {  // one driver process of `bench net` (internal)
    if (args.size() != 2) throw std::invalid_argument("bench net-driver N");
    return iogrid::bench::run_net_driver(std::stoi(args[1]));
  }
  if (suite == "net-matrix") {  // the NAT matrix driver of `bench net` (internal)
    if (args.size() < 3) throw std::invalid_argument("bench net-matrix NODE NODE...");
    return iogrid::bench::run_net_matrix_driver(std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (suite == "net-transfer") {  // the transfer driver of `bench net` (internal)
    if (args.size() != 2) throw std::invalid_argument("bench net-transfer BYTES");
    return iogrid::bench::run_net_transfer_driver(std::stoull(args[1]));
  }
  if (suite == "users-driver") {  // one driver process of `bench users` (internal)
    if (args.size() != 4) throw std::invalid_argument("bench users-driver INDEX TASKS BIG");
    return iogrid::bench::run_users_driver(std::stoull(args[1]), std::stoull(args[2]), std::stoull(args[3]));
  }
  for (std::size_t i = 1; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--json") o.json = true;
    else if (a == "--mode") o.mode = value();
    else if (a == "--runs") o.runs = std::stoi(value());
    else if (a == "--seconds") o.seconds = std::stod(value());
    else if (suite == "chaos" && a == "--minutes") minutes = std::stod(value());
    else if (suite == "users" && a == "--drivers") users.drivers = std::stoi(value());
    else if (suite == "users" && a == "--tasks") users.tasks = std::stoull(value());
    else if (suite == "users" && a == "--big") users.big = std::stoull(value());
    else if (suite == "users" && a == "--pollers") users.pollers = std::stoi(value());
    else if (suite == "users" && a == "--queued") users.queued = std::stoull(value());
    else if (suite == "users" && a == "--fair-quantum-ms") users.fair_quantum_ms = std::stol(value());
    else if (suite == "micro-client" && (a == "--address" || a == "--token-file")) value();
    else if (suite == "ui" && a == "--nodes") ui_nodes = std::stoi(value());
    else if (suite == "ui" && a == "--tasks") ui_tasks = std::stoull(value());
    else if (a == "--only") {
      auto list = value();
      std::size_t p = 0;
      while (p <= list.size()) {
        auto q = list.find(',', p);
        if (q == std::string::npos) q = list.size();
        if (q > p) o.only.push_back(list.substr(p, q - p));
        p = q + 1;
      }
    } else throw std::invalid_argument("unknown option '" + a + "' for bench " + suite);
  }
  if (o.runs < 1) throw std::invalid_argument("--runs must be at least 1");
  if (suite == "micro") return iogrid::bench::run_micro(o);
  if (suite == "scale") return iogrid::bench::run_scale(o);
  if (suite == "gpu") return iogrid::bench::run_gpu(o);
  if (suite == "workloads") return iogrid::bench::run_workloads(o);
  // chaos and users always run a head and node processes: their rows are cluster-mode figures (the one
  // embedded comparison row says so in its name).
  if (suite == "chaos" || suite == "users" || suite == "net") o.mode = "cluster";
  if (suite == "net") return iogrid::bench::run_net(o);
  if (suite == "market") return iogrid::bench::run_market(o);
  if (suite == "chaos") {
    if (!(minutes > 0)) throw std::invalid_argument("--minutes must be positive");
    return iogrid::bench::run_chaos(o, minutes);
  }
  if (suite == "users") {
    if (users.drivers < 1 || users.pollers < 0) throw std::invalid_argument("--drivers must be at least 1, --pollers at least 0");
    return iogrid::bench::run_users(o, users);
  }
  if (suite == "ui") {
    if (ui_nodes < 10) throw std::invalid_argument("--nodes must be at least 10");
    return iogrid::bench::run_ui(o, ui_nodes, ui_tasks);
  }
  if (suite == "micro-client") {
    std::string address, token;
    for (std::size_t i = 1; i + 1 < args.size(); ++i) {
      if (args[i] == "--address") address = args[i + 1];
      if (args[i] == "--token-file") token = args[i + 1];
    }
    return iogrid::bench::run_micro_client(address, token, o.seconds);
  }
  std::cerr << "iogrid bench: unknown suite '" << suite << "' (available: micro, scale, gpu, workloads, chaos, users, ui, net)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  iogrid::gpu::use_pci_device_order();
  // Started by a node as a worker of a job this executable drives (iogrid bench ... --mode cluster).
  if (std::getenv(iogrid::runtime::cluster::kWorkerEndpointEnv)) iogrid::runtime::cluster::run_worker_process();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  try {
    const auto cmd = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (cmd == "version" || cmd == "--version") {
      std::cout << "iogrid 0.1.0\n";
      return 0;
    }
    if (cmd == "bench") return bench(rest);
    if (cmd == "head") return iogrid::cli::head_command(rest);
    if (cmd == "node") return iogrid::cli::node_command(rest);
    if (cmd == "status") return iogrid::cli::status_command(rest);
    if (cmd == "tunnel") return iogrid::cli::tunnel_command(rest);
    if (cmd == "job") return iogrid::cli::job_command(rest);
    if (cmd == "sched") return iogrid::cli::sched_command(rest);
    if (cmd == "cluster") return iogrid::cli::cluster_command(rest);
    if (cmd == "ledger") return iogrid::cli::ledger_command(rest);
    if (cmd == "market") return iogrid::cli::market_command(rest);
    if (cmd == "verify") return iogrid::cli::verify_command(rest);
    if (cmd == "ui-key") return iogrid::cli::ui_key_command(rest);
    std::cerr << "iogrid: unknown command '" << cmd << "'\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    std::cerr << (what.rfind("iogrid: ", 0) == 0 ? "" : "iogrid: ") << what << "\n";
    return 2;
  }
}
