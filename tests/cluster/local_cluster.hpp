// The tests' view of the local-cluster harness (runtime/cluster/local_cluster.hpp): the `iogrid` built in
// this tree, debug logs, and drivers that default to tests/cluster/cluster_driver.
#pragma once

#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/cluster/cluster_client.hpp"
#include "runtime/cluster/local_cluster.hpp"

namespace iogrid::test {

using Process = runtime::cluster::ChildProcess;
using runtime::cluster::eventually;

class LocalCluster : public runtime::cluster::LocalCluster {
 public:
  struct Tls {};  // tag: run the cluster with mutual TLS (certificates made for the test)

  explicit LocalCluster(std::vector<std::string> head_args = {})
      : runtime::cluster::LocalCluster({.iogrid = IOGRID_CLI_PATH, .head_args = std::move(head_args), .prefix = "iogrid-test"}) {}
  explicit LocalCluster(Tls) : runtime::cluster::LocalCluster({.iogrid = IOGRID_CLI_PATH, .tls = true, .prefix = "iogrid-test"}) {}

  nlohmann::json status() const { return nlohmann::json::parse(status_json()); }

  // The test driver program (tests/cluster/cluster_driver.cpp) with these arguments.
  Process& driver(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), CLUSTER_DRIVER_PATH);
    return runtime::cluster::LocalCluster::driver(std::move(args), std::move(env));
  }
};

}  // namespace iogrid::test
