#include "runtime/cluster/local_cluster.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

#include "runtime/cluster/cluster_client.hpp"

namespace iogrid::runtime::cluster {

namespace {
void run_or_throw(const std::string& cmd) {
  if (std::system((cmd + " > /dev/null 2>&1").c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}
}  // namespace

LocalCluster::LocalCluster(LocalClusterOptions opts) : opts_(std::move(opts)) {
  if (opts_.iogrid.empty()) throw std::runtime_error("LocalCluster: no iogrid executable given");
  if (opts_.netns) {
    lab_ = std::make_unique<NetnsLab>();
    head_host_ = lab_->host("head");
  }
  std::random_device rd;
  dir_ = std::filesystem::temp_directory_path() /
         (opts_.prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(dir_);
  token_file_ = (dir_ / "token").string();
  {
    std::ofstream t(token_file_);
    t << "local-" << rd() << rd() << rd() << rd() << "\n";
  }
  if (opts_.tls) {
    make_certificates("ca", {"member"});
    tls_ = {"--tls-cert", (dir_ / "member.pem").string(), "--tls-key", (dir_ / "member.key").string(), "--tls-ca",
            (dir_ / "ca.pem").string()};
    // This process (status queries) and the drivers it starts use the same certificate.
    setenv("IOGRID_TLS_CERT", tls_[1].c_str(), 1);
    setenv("IOGRID_TLS_KEY", tls_[3].c_str(), 1);
    setenv("IOGRID_TLS_CA", tls_[5].c_str(), 1);
  }
  start_head();
}

LocalCluster::~LocalCluster() {
  if (!tls_.empty()) {
    unsetenv("IOGRID_TLS_CERT");
    unsetenv("IOGRID_TLS_KEY");
    unsetenv("IOGRID_TLS_CA");
  }
  others_.clear();
  nodes_.clear();
  head_.reset();
  std::error_code ec;
  if (!std::getenv("IOGRID_KEEP_LOCAL_CLUSTER")) std::filesystem::remove_all(dir_, ec);
}

void LocalCluster::make_certificates(const std::string& ca, const std::vector<std::string>& names) const {
  auto d = dir_.string() + "/";
  run_or_throw("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d + ca +
               ".key -out " + d + ca + ".pem -days 2 -subj /CN=" + ca);
  for (const auto& n : names) {
    run_or_throw("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d + n + ".key -out " +
                 d + n + ".csr -subj /CN=" + n);
    run_or_throw("openssl x509 -req -in " + d + n + ".csr -CA " + d + ca + ".pem -CAkey " + d + ca +
                 ".key -CAcreateserial -out " + d + n + ".pem -days 2");
  }
}

void LocalCluster::start_head(std::vector<std::string> extra) {
  std::vector<std::string> argv{opts_.iogrid, "head", "--port", "0", "--token-file", token_file_, "--log-level", opts_.log_level};
  if (opts_.state) argv.insert(argv.end(), {"--state", (dir_ / "state").string()});
  if (opts_.dashboard) argv.insert(argv.end(), {"--dashboard-port", "0"});
  else argv.push_back("--no-dashboard");
  argv.insert(argv.end(), tls_.begin(), tls_.end());
  argv.insert(argv.end(), opts_.head_args.begin(), opts_.head_args.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (head_) {  // a restart: the earlier head's log is kept (head.log.1, .2, ...)
    earlier_head_logs_ += head_->output();
    head_.reset();
    std::error_code ec;
    std::filesystem::rename(dir_ / "head.log", dir_ / ("head.log." + std::to_string(++head_restarts_)), ec);
  }
  head_ = std::make_unique<ChildProcess>(on_host("head", argv), std::map<std::string, std::string>{}, (dir_ / "head.log").string());
  if (!head_->wait_for_output("IOGRID_HEAD_PORT=", std::chrono::seconds(10)))
    throw std::runtime_error("the head did not start within 10 s:\n" + head_->output());
  auto out = head_->output();
  port_ = std::stoi(out.substr(out.find("IOGRID_HEAD_PORT=") + 17));
  address_ = head_host_ + ":" + std::to_string(port_);
  if (auto d = out.find("IOGRID_DASHBOARD_PORT="); d != std::string::npos) dashboard_port_ = std::stoi(out.substr(d + 22));
}

ChildProcess& LocalCluster::add_node(const std::string& name, std::vector<std::string> args, Nat nat) {
  if (nat != Nat::none) {
    if (!lab_) throw std::runtime_error("LocalCluster: a node behind a NAT needs the `netns` option");
    lab_->host("node " + name, nat);
  }
  std::vector<std::string> argv{opts_.iogrid, "node", "--address", address_, "--token-file", token_file_, "--name", name,
                                "--work-dir", (dir_ / name).string(), "--log-level", opts_.log_level};
  argv.insert(argv.end(), tls_.begin(), tls_.end());
  argv.insert(argv.end(), args.begin(), args.end());
  auto& p = nodes_[name];
  p.reset();
  p = std::make_unique<ChildProcess>(on_host("node " + name, argv), std::map<std::string, std::string>{},
                                     (dir_ / (name + ".log")).string());
  return *p;
}

std::vector<std::string> LocalCluster::on_host(const std::string& host, std::vector<std::string> argv) {
  if (!lab_) return argv;
  auto prefix = lab_->exec_prefix(host);
  argv.insert(argv.begin(), prefix.begin(), prefix.end());
  return argv;
}

ChildProcess& LocalCluster::driver(std::vector<std::string> argv, std::map<std::string, std::string> env) {
  env.emplace("IOGRID_ADDRESS", address_);
  env.emplace("IOGRID_TOKEN_FILE", token_file_);
  auto log = (dir_ / ("process-" + std::to_string(others_.size()) + ".log")).string();
  others_.push_back(std::make_unique<ChildProcess>(std::move(argv), std::move(env), log));
  return *others_.back();
}

ChildProcess& LocalCluster::driver_at(const std::string& host, Nat nat, std::vector<std::string> argv,
                                      std::map<std::string, std::string> env) {
  if (!lab_) throw std::runtime_error("LocalCluster: a driver on a host of its own needs the `netns` option");
  lab_->host(host, nat);
  return driver(on_host(host, std::move(argv)), std::move(env));
}

ChildProcess& LocalCluster::command(std::vector<std::string> args, std::map<std::string, std::string> env) {
  args.insert(args.begin(), opts_.iogrid);
  return driver(std::move(args), std::move(env));
}

std::string LocalCluster::status_json() const { return cluster_status_json(address_, read_token()); }

bool LocalCluster::wait_nodes(std::size_t n, std::chrono::milliseconds timeout) const {
  return eventually(
      [&] {
        try {
          return nlohmann::json::parse(status_json())["nodes"].size() == n;
        } catch (...) {
          return false;
        }
      },
      timeout);
}

std::string LocalCluster::read_token() const {
  std::ifstream in(token_file_);
  std::string t;
  in >> t;
  return t;
}

std::string LocalCluster::head_log() const { return earlier_head_logs_ + (head_ ? head_->output() : std::string()); }

std::string LocalCluster::logs() const {
  std::string out = "--- head ---\n" + head_log();
  for (const auto& [n, p] : nodes_) out += "--- node " + n + " ---\n" + p->output();
  for (const auto& d : others_) out += "--- " + d->log_path() + " ---\n" + d->output();
  return out;
}

}  // namespace iogrid::runtime::cluster
