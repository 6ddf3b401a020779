// LocalCluster: a real head and real node processes on 127.0.0.1 for one test, with ports chosen at run time
// (the head listens on port 0 and prints the port it got), a private token and work directory, and every
// process killed when the test ends.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "process.hpp"
#include "runtime/cluster/cluster_client.hpp"

namespace iogrid::test {

class LocalCluster {
 public:
  struct Tls {};  // tag: run the cluster with mutual TLS (certificates made for the test)

  explicit LocalCluster(std::vector<std::string> head_args = {}) {
    make_dir();
    start_head(std::move(head_args));
  }
  explicit LocalCluster(Tls) {
    make_dir();
    make_certificates("ca", {"member"});
    tls_ = {"--tls-cert", (dir_ / "member.pem").string(), "--tls-key", (dir_ / "member.key").string(), "--tls-ca",
            (dir_ / "ca.pem").string()};
    // This process (status queries) and the drivers it starts use the same certificate.
    setenv("IOGRID_TLS_CERT", tls_[1].c_str(), 1);
    setenv("IOGRID_TLS_KEY", tls_[3].c_str(), 1);
    setenv("IOGRID_TLS_CA", tls_[5].c_str(), 1);
    start_head({});
  }

  // A CA `ca` under dir() and, for each name, NAME.pem / NAME.key signed by it (EC P-256, valid 2 days).
  void make_certificates(const std::string& ca, const std::vector<std::string>& names) {
    auto run = [](const std::string& cmd) { REQUIRE(std::system((cmd + " > /dev/null 2>&1").c_str()) == 0); };
    auto d = dir_.string() + "/";
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d + ca + ".key -out " + d +
        ca + ".pem -days 2 -subj /CN=" + ca);
    for (const auto& n : names) {
      run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + d + n + ".key -out " + d + n +
          ".csr -subj /CN=" + n);
      run("openssl x509 -req -in " + d + n + ".csr -CA " + d + ca + ".pem -CAkey " + d + ca + ".key -CAcreateserial -out " + d +
          n + ".pem -days 2");
    }
  }

 private:
  void make_dir() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("iogrid-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    token_file_ = (dir_ / "token").string();
    {
      std::ofstream t(token_file_);
      t << "test-token-" << rd() << rd() << rd() << "\n";
    }
  }

 public:
  ~LocalCluster() {
    if (!tls_.empty()) {
      unsetenv("IOGRID_TLS_CERT");
      unsetenv("IOGRID_TLS_KEY");
      unsetenv("IOGRID_TLS_CA");
    }
    drivers_.clear();
    nodes_.clear();
    head_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void start_head(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{IOGRID_CLI_PATH, "head", "--port", "0", "--token-file", token_file_, "--state",
                                  (dir_ / "state").string(), "--log-level", "debug", "--no-dashboard"};
    argv.insert(argv.end(), tls_.begin(), tls_.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    head_ = std::make_unique<Process>(argv, std::map<std::string, std::string>{}, (dir_ / "head.log").string());
    REQUIRE(head_->wait_for_output("IOGRID_HEAD_PORT=", std::chrono::seconds(10)));
    auto out = head_->output();
    auto p = out.find("IOGRID_HEAD_PORT=");
    port_ = std::stoi(out.substr(p + 17));
    address_ = "127.0.0.1:" + std::to_string(port_);
    if (auto d = out.find("IOGRID_DASHBOARD_PORT="); d != std::string::npos) dashboard_port_ = std::stoi(out.substr(d + 22));
  }
  Process& head() { return *head_; }

  Process& add_node(const std::string& name, std::vector<std::string> args = {}) {
    std::vector<std::string> argv{IOGRID_CLI_PATH, "node", "--address", address_, "--token-file", token_file_, "--name",
                                  name, "--work-dir", (dir_ / name).string(), "--log-level", "debug"};
    argv.insert(argv.end(), tls_.begin(), tls_.end());
    argv.insert(argv.end(), args.begin(), args.end());
    auto& p = nodes_[name];
    p = std::make_unique<Process>(argv, std::map<std::string, std::string>{}, (dir_ / (name + ".log")).string());
    return *p;
  }
  Process& node(const std::string& name) { return *nodes_.at(name); }

  nlohmann::json status() {
    return nlohmann::json::parse(runtime::cluster::cluster_status_json(address_, read_token()));
  }
  bool wait_nodes(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    return eventually([&] {
      try {
        return status()["nodes"].size() == n;
      } catch (...) {
        return false;
      }
    }, timeout);
  }

  Process& driver(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv{CLUSTER_DRIVER_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    env.emplace("IOGRID_ADDRESS", address_);
    env.emplace("IOGRID_TOKEN_FILE", token_file_);
    auto log = (dir_ / ("driver-" + std::to_string(drivers_.size()) + ".log")).string();
    drivers_.push_back(std::make_unique<Process>(argv, env, log));
    return *drivers_.back();
  }

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  int dashboard_port() const { return dashboard_port_; }
  const std::string& token_file() const { return token_file_; }
  std::filesystem::path dir() const { return dir_; }
  std::string read_token() const {
    std::ifstream in(token_file_);
    std::string t;
    in >> t;
    return t;
  }
  // Everything the cluster's processes logged, for failure messages.
  std::string logs() const {
    std::string out = "--- head ---\n" + head_->output();
    for (const auto& [n, p] : nodes_) out += "--- node " + n + " ---\n" + p->output();
    for (const auto& d : drivers_) out += "--- driver ---\n" + d->output();
    return out;
  }

 private:
  std::filesystem::path dir_;
  std::string token_file_, address_;
  int port_ = 0;
  int dashboard_port_ = 0;
  std::unique_ptr<Process> head_;
  std::map<std::string, std::unique_ptr<Process>> nodes_;
  std::vector<std::unique_ptr<Process>> drivers_;
  std::vector<std::string> tls_;
};

}  // namespace iogrid::test
