// Reservations ("clusters"): GPUs reserved as one gang for a while, from a program. The same as
// `iogrid cluster create|list|delete` and `iogrid ledger`, in both modes (embedded and cluster).
//
//   auto c = iogrid::create_cluster({.gpus = 8, .gpu_model = "A100|H100", .region = "eu", .max_price = 2.5});
//   auto r = iogrid::task(train).options({.num_gpus = 1, .cluster = c.id}).remote();
//   iogrid::delete_cluster(c.id);
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace iogrid {

struct ClusterSpec {
  int gpus = 0;                        // whole GPUs, one per bundle
  std::string gpu_model;               // accepted models, '|'-separated; empty: any
  std::string region;                  // only this region; empty: any single region (preferred), else any
  double max_price = 0;                // per GPU-hour; 0: no ceiling
  std::string tier;                    // spot, standard (default) or urgent: the posted price x 0.6, 1 or 1.5
  double min_reputation = 0;           // 0..1
  std::chrono::seconds duration{0};    // 0: until deleted
  double cpus_per_gpu = 2;             // CPUs reserved with each GPU
  std::string name;
  bool any_region = false;             // allow the GPUs to span regions
  std::string strategy = "pack";       // pack, spread, strict-pack (one node) or strict-spread (one GPU per node)
};

struct ClusterNode {
  std::string node;
  int gpus = 0;
  std::string model;
};

struct ClusterInfo {
  std::string id;                      // "c-7": pass as TaskOptions::cluster or `iogrid job submit --cluster`
  std::string name, region, owner;
  int gpus = 0;
  std::vector<ClusterNode> nodes;
  std::vector<std::string> bundles;    // the node of bundle k (one GPU each; TaskOptions::bundle = k)
  double price_per_hour = 0;           // the reservation's total
  double cost_so_far = 0;
  std::optional<double> expires_in_s;  // nullopt: until deleted
};

// Reserves now or throws iogrid::Error naming the constraint that failed and the closest offer.
ClusterInfo create_cluster(const ClusterSpec& spec);
std::vector<ClusterInfo> list_clusters();
// Ends a reservation (its jobs stop in cluster mode); throws iogrid::Error for an unknown id.
void delete_cluster(const std::string& id);

struct LedgerEntry {
  std::string kind;                    // "job", "reservation" or "node"
  std::string name;
  double gpu_seconds = 0;
  double cost = 0;                     // GPU-seconds x price per GPU-hour / 3600
};
std::vector<LedgerEntry> ledger();

}  // namespace iogrid
