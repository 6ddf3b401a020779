// Benchmark results: a human table, or with --json one JSON line per figure:
// {"suite","name","value","unit","higher_is_better","mode"}.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace iogrid::bench {

struct Figure {
  std::string name;
  double value = 0;
  std::string unit;
  bool higher_is_better = true;
  std::vector<double> runs;  // every run; value is their median
};

struct Options {
  std::string mode = "embedded";
  bool json = false;
  int runs = 5;
  double seconds = 1.0;     // per run of a timed loop
  std::vector<std::string> only;  // figure names to run; empty: all
};

double median(std::vector<double> v);
// What --only picks among the figures a suite can run (`names`): the returned test says whether a figure is
// wanted. A name in --only the suite does not know throws std::invalid_argument listing the suite's names, so a
// misspelt figure is an error rather than an empty table.
std::function<bool(const std::string&)> selection(const Options& o, const std::string& suite,
                                                  const std::vector<std::string>& names);
inline double secs(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
void print(const std::string& suite, const Options& o, const std::vector<Figure>& figures);
// The figures a suite's child process printed as its last line starting with `tag` ("TAG k=v k=v ..."); empty
// when there is none.
std::map<std::string, double> parse_tagged_line(const std::string& out, const std::string& tag);
void progress(const Options& o, const std::string& line);  // to stderr (stdout holds the table or the JSON lines)

int run_micro(const Options& o);
// The market: so far the ledger's journal (append rate, verify time over 1M entries).
int run_market(const Options& o);
// The scheduler at 10,000 nodes: decisions/s, p99 latency (library and head actor), gangs/s, bytes per
// queued task, 1M-task replay time, FGD against best fit.
int run_scale(const Options& o);
// The GPU layer: collectives against Gloo called directly (CPU), and on a GPU machine the GPU rows.
int run_gpu(const Options& o);
// Training, batch inference (and later sweeps) on Fashion-MNIST.
int run_workloads(const Options& o);
// Cluster mode under work it must survive: nested depth 16 (embedded and cluster), and a chaos run of `minutes`.
int run_chaos(const Options& o, double minutes);
// Cluster mode under many users at once (bench/users.cpp), and one of its driver processes.
struct UsersOptions {
  int drivers = 32;
  std::uint64_t tasks = 20000;  // small tasks per driver
  std::uint64_t big = 200;      // tasks with an 8 MiB result per driver
  int pollers = 20;             // clients polling the status API
  std::uint64_t queued = 1000000;  // tasks the queued_1m driver submits before it gets any
  long fair_quantum_ms = -1;      // the head's --fair-quantum-ms (-1: its default)
};
int run_users(const Options& o, const UsersOptions& u);
// Connections across NATs (bench/net.cpp): empty-task round trips to a driver dialled directly and to one behind
// a NAT reached through the head's relay (needs root for network namespaces; 77 where they cannot be made).
int run_net(const Options& o);
int run_net_driver(int n);
int run_net_transfer_driver(std::uint64_t bytes);
int run_net_matrix_driver(const std::vector<std::string>& nodes);
int run_users_driver(std::uint64_t index, std::uint64_t tasks, std::uint64_t big);
// One extra driver of `bench micro --mode cluster` (multi_client_tasks_async): prints "RATE x".
// The web UI and its API in front of a head of `nodes` nodes and `tasks` task spans (bench/ui.cpp).
int run_ui(const Options& o, int nodes, std::uint64_t tasks);
int run_micro_client(const std::string& address, const std::string& token_file, double seconds);

}  // namespace iogrid::bench
