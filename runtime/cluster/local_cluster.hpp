// LocalCluster: a real head and real node processes on this machine, for tests and benchmarks. The head
// listens with a port chosen at run time (it binds port 0 and prints the port it got), with a private token and
// work directory, and is reached at 127.0.0.1 -- or, with `netns`, the head and every node run in their own
// network namespace on a bridge (netns_lab.hpp), each host its own address, so every connection between them
// crosses a real network hop (drivers and commands stay in this process's namespace); every process it started is killed (SIGKILL) and the directory removed
// when the object goes away (kept when IOGRID_KEEP_LOCAL_CLUSTER is set, for post-mortems).
// The daemons are `iogrid head` / `iogrid node` run from the executable named in the options.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cluster/child_process.hpp"
#include "runtime/cluster/netns_lab.hpp"

namespace iogrid::runtime::cluster {

struct LocalClusterOptions {
  std::string iogrid;                   // the `iogrid` executable (required)
  std::vector<std::string> head_args;   // extra arguments for `iogrid head`
  bool tls = false;                     // mutual TLS with certificates made for the run (needs openssl)
  bool state = true;                    // the head keeps --state under dir()/state
  bool dashboard = false;               // serve the head's dashboard (on a port chosen at run time)
  std::string log_level = "debug";
  std::string prefix = "iogrid-local";  // name of the work directory under $TMPDIR
  bool netns = false;                   // hosts as network namespaces (root; throws NetnsUnavailable otherwise)
};

class LocalCluster {
 public:
  // Starts the head; throws std::runtime_error (with its log) when it does not come up within 10 s.
  explicit LocalCluster(LocalClusterOptions opts);
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // (Re)starts the head with the options' arguments plus `extra` (a restarted head keeps its --state).
  void start_head(std::vector<std::string> extra = {});
  ChildProcess& head() { return *head_; }
  // Starts `iogrid node NAME` joined to the head; `args` are added (e.g. --num-cpus 2, --gpus ...). `nat`: the
  // node's host sits behind that kind of router (needs `netns`; netns_lab.hpp).
  ChildProcess& add_node(const std::string& name, std::vector<std::string> args = {}, Nat nat = Nat::none);
  ChildProcess& node(const std::string& name) { return *nodes_.at(name); }
  // Runs a program (argv[0] its path) as a driver of this cluster (IOGRID_ADDRESS and IOGRID_TOKEN_FILE set).
  ChildProcess& driver(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
  // The same on host `host` of the lab (made behind `nat` on first use; needs `netns`): a driver at home.
  ChildProcess& driver_at(const std::string& host, Nat nat, std::vector<std::string> argv,
                          std::map<std::string, std::string> env = {});
  // Runs `iogrid ARGS...` with this cluster's address and token (a CLI command, or a bench client).
  ChildProcess& command(std::vector<std::string> args, std::map<std::string, std::string> env = {});

  // The head's status as JSON text (`iogrid status --json`); throws iogrid::Error when the head does not answer.
  std::string status_json() const;
  // Waits until the head lists exactly `n` live nodes.
  bool wait_nodes(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;

  // A CA `ca` under dir() and, for each name, NAME.pem / NAME.key signed by it (EC P-256, valid 2 days).
  void make_certificates(const std::string& ca, const std::vector<std::string>& names) const;

  const std::string& address() const { return address_; }
  // The network namespaces the hosts run in (nullptr without `netns`), e.g. to cut a node off.
  NetnsLab* netns() { return lab_.get(); }
  // The address node `name` has on the cluster's network (127.0.0.1 without namespaces), and the one drivers and
  // commands started here are seen from.
  std::string node_host(const std::string& name) { return lab_ ? lab_->host("node " + name) : "127.0.0.1"; }
  std::string driver_host() const { return lab_ ? lab_->gateway() : "127.0.0.1"; }
  // The address the head sees node `name` from (its router's behind a NAT).
  std::string node_public_host(const std::string& name) { return lab_ ? lab_->public_address("node " + name) : "127.0.0.1"; }
  int port() const { return port_; }
  int dashboard_port() const { return dashboard_port_; }
  const std::string& token_file() const { return token_file_; }
  std::string read_token() const;
  const std::filesystem::path& dir() const { return dir_; }
  // Everything the cluster's processes logged, for failure messages.
  std::string logs() const;
  // What every head this cluster ran logged, the earlier ones (before start_head restarted it) first.
  std::string head_log() const;

 private:
  LocalClusterOptions opts_;
  std::unique_ptr<NetnsLab> lab_;  // outlives the processes in it (declared before them)
  std::string head_host_ = "127.0.0.1";
  std::filesystem::path dir_;
  std::string token_file_, address_;
  int port_ = 0;
  int dashboard_port_ = 0;
  std::vector<std::string> tls_;
  std::unique_ptr<ChildProcess> head_;
  std::string earlier_head_logs_;
  int head_restarts_ = 0;
  std::map<std::string, std::unique_ptr<ChildProcess>> nodes_;
  std::vector<std::unique_ptr<ChildProcess>> others_;

  std::vector<std::string> on_host(const std::string& host, std::vector<std::string> argv);
};

}  // namespace iogrid::runtime::cluster
