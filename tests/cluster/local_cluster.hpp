// The tests' view of the local-cluster harness (runtime/cluster/local_cluster.hpp): the `iogrid` built in
// this tree, debug logs, and drivers that default to tests/cluster/cluster_driver.
#pragma once

#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/cluster/cluster_client.hpp"
#include "runtime/cluster/local_cluster.hpp"

namespace iogrid::test {

using Process = runtime::cluster::ChildProcess;
using runtime::cluster::eventually;

// With IOGRID_TEST_NETNS=1 every cluster of the test runs its head and nodes in their own network namespaces
// (ctest's netns.* cases). Where namespaces cannot be made the test process says why and exits with 77, which
// ctest reports as skipped.
// Timing bounds the issues set hold for the release build; a sanitizer build runs every process two to five
// times slower (and its status query spawns nothing, it is the head's own latency that grows), so the same
// bound is scaled there rather than left to flake.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr double kSanitizerSlowdown = 3.0;
#else
inline constexpr double kSanitizerSlowdown = 1.0;
#endif

inline bool use_netns() {
  if (!std::getenv("IOGRID_TEST_NETNS")) return false;
  try {
    runtime::cluster::NetnsLab probe;
  } catch (const runtime::cluster::NetnsUnavailable& e) {
    std::cout << "skipped: the hosts cannot run in network namespaces here: " << e.what() << std::endl;
    std::exit(77);
  }
  return true;
}

class LocalCluster : public runtime::cluster::LocalCluster {
 public:
  struct Tls {};  // tag: run the cluster with mutual TLS (certificates made for the test)

  explicit LocalCluster(std::vector<std::string> head_args = {})
      : runtime::cluster::LocalCluster(
            {.iogrid = IOGRID_CLI_PATH, .head_args = std::move(head_args), .prefix = "iogrid-test", .netns = use_netns()}) {}
  explicit LocalCluster(Tls)
      : runtime::cluster::LocalCluster({.iogrid = IOGRID_CLI_PATH, .tls = true, .prefix = "iogrid-test", .netns = use_netns()}) {}

  nlohmann::json status() const { return nlohmann::json::parse(status_json()); }

  // The test driver program (tests/cluster/cluster_driver.cpp) with these arguments.
  Process& driver(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), CLUSTER_DRIVER_PATH);
    return runtime::cluster::LocalCluster::driver(std::move(args), std::move(env));
  }
};

}  // namespace iogrid::test
