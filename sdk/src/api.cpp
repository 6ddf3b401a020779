#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "gpu/devices.hpp"
#include "iogrid/core/core.hpp"
#include "iogrid/errors.hpp"
#include "iogrid/clusters.hpp"
#include "iogrid/runtime.hpp"
#include "runtime/task_submitter.hpp"
#include "worker/work_source.hpp"
#include "runtime/cluster/cluster_client.hpp"
#include "runtime/cluster/worker_env.hpp"
#include "runtime/embedded_runtime.hpp"
#include "runtime/logging.hpp"
#include "runtime/transport/data_plane.hpp"
#include "runtime/transport/auth.hpp"

namespace iogrid {

namespace {
std::mutex g_mutex;
std::unique_ptr<runtime::SubmitterCore> g_core;  // the embedded runtime or a cluster client

// The public options, as the runtime takes them.
runtime::EmbeddedOptions embedded_options(const InitOptions& o) {
  runtime::EmbeddedOptions e;
  for (const auto& n : o.nodes) {
    runtime::NodeSpec s;
    s.name = n.name;
    s.num_cpus = n.num_cpus;
    s.memory_gib = n.memory_gib;
    for (const auto& g : n.gpus) s.gpus.push_back(runtime::GpuSpec{g.model, g.memory_gib, g.compute_capability, g.count, g.tflops});
    s.resources = n.resources;
    s.labels = n.labels;
    s.price_per_gpu_hour = n.price_per_gpu_hour;
    s.reputation = n.reputation;
    s.object_store_bytes = n.object_store_bytes;
    e.nodes.push_back(std::move(s));
  }
  e.spill_dir = o.spill_dir;
  e.lease_idle = o.lease_idle;
  e.dashboard_port = o.dashboard_port;
  e.verify_fraction = std::max(0.0, o.verify_fraction);
  e.verify_seed = o.verify_seed;
  if (const char* env = std::getenv("IOGRID_DASHBOARD_PORT"); env && *env && o.dashboard_port < 0) e.dashboard_port = std::atoi(env);
  return e;
}

NodeInfo node_info(const runtime::NodeSummary& n) {
  NodeInfo i;
  i.name = n.name;
  i.num_cpus = n.num_cpus;
  i.available_cpus = n.available_cpus;
  i.memory_gib = n.memory_gib;
  for (const auto& g : n.gpus) i.gpus.push_back(GpuOptions{g.model, g.memory_gib, g.compute_capability, 1, g.tflops});
  i.labels = n.labels;
  i.object_store_used_bytes = n.object_store_used_bytes;
  i.object_store_capacity_bytes = n.object_store_capacity_bytes;
  i.spilled_bytes = n.spilled_bytes;
  return i;
}
}  // namespace

void init(InitOptions options) {
  gpu::use_pci_device_order();
  if (std::getenv(runtime::cluster::kWorkerEndpointEnv)) runtime::cluster::run_worker_process();
  std::lock_guard<std::mutex> g(g_mutex);
  if (g_core) throw RuntimeError("iogrid: init() called twice; call iogrid::shutdown() first");
  if (options.address.empty())
    if (const char* env = std::getenv("IOGRID_ADDRESS"); env && *env) options.address = env;
  if (options.cluster.empty())
    if (const char* env = std::getenv("IOGRID_CLUSTER"); env && *env) options.cluster = env;
  if (const char* env = std::getenv("IOGRID_LOG_LEVEL"); env && *env) options.log_level = env;
  runtime::set_log_level(options.log_level);
  runtime::set_default_cluster(options.cluster);
  if (const char* env = std::getenv("IOGRID_VERIFY_FRACTION"); env && *env && options.verify_fraction < 0) {
    char* end = nullptr;
    options.verify_fraction = std::strtod(env, &end);
    if (end == env || *end || !(options.verify_fraction >= 0 && options.verify_fraction <= 1))
      throw Error(std::string("iogrid: IOGRID_VERIFY_FRACTION is a share between 0 and 1, got '") + env + "'");
  }
  if (options.verify_fraction > 1 || (options.verify_fraction < 0 && options.verify_fraction != -1))
    throw Error("iogrid: InitOptions::verify_fraction is a share between 0 and 1 (or -1: the head's default)");
  if (!options.address.empty()) {
    runtime::cluster::ClientOptions co;
    co.address = options.address;
    co.token = runtime::transport::load_token(options.token_file.empty() ? runtime::transport::default_token_path()
                                                                         : options.token_file);
    co.lease_idle = std::max(options.lease_idle, std::chrono::milliseconds(100));
    co.verify_fraction = options.verify_fraction;
    co.verify_seed = options.verify_seed;
    g_core = runtime::cluster::connect_cluster(co);
  } else {
    g_core = runtime::start_embedded(embedded_options(options));
  }
  core::install(g_core.get());
  // A program that returns from main() without shutdown() still stops cleanly. exit() destroys the main
  // thread's thread-locals (CAF's among them) before it runs atexit handlers, so on the main thread the stop
  // hangs on a thread-local made after CAF's, which goes first; atexit covers init() from other threads.
  struct StopAtExit {
    ~StopAtExit() { shutdown(); }
  };
  if (::gettid() == ::getpid()) {
    static thread_local StopAtExit stop_at_exit;
    (void)&stop_at_exit;
  }
  static bool registered = [] { return std::atexit([] { shutdown(); }) == 0; }();
  (void)registered;
}

InitOptions options_from_args(int argc, char** argv, InitOptions base) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto take = [&](const std::string& flag, std::string& out) {
      if (a == flag && i + 1 < argc) {
        out = argv[++i];
        return true;
      }
      if (a.rfind(flag + "=", 0) == 0) {
        out = a.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    if (take("--address", base.address) || take("--token-file", base.token_file)) continue;
  }
  return base;
}

void shutdown() {
  std::unique_ptr<runtime::SubmitterCore> c;
  {
    std::lock_guard<std::mutex> g(g_mutex);
    core::install(nullptr);
    c = std::move(g_core);
  }
  if (c) c->stop();
}

bool is_initialized() { return core::is_running(); }

namespace {
// The running runtime; throws iogrid::RuntimeError when init() has not been called.
// Inside a worker process of a cluster, that process's own client of the head.
runtime::SubmitterCore& running() {
  {
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_core) return *g_core;
  }
  if (auto* w = runtime::cluster::worker_process_client()) return *w;
  throw RuntimeError("iogrid: the runtime is not running; call iogrid::init() first");
}
}  // namespace

std::vector<NodeInfo> nodes() {
  std::vector<NodeInfo> out;
  for (const auto& n : running().describe()) out.push_back(node_info(n));
  return out;
}

namespace {
ClusterInfo cluster_of(const nlohmann::json& j) {
  ClusterInfo c;
  c.id = j.value("id", "");
  c.name = j.value("name", "");
  c.region = j.value("region", "");
  c.owner = j.value("owner", "");
  c.gpus = j.value("gpus", 0);
  for (const auto& n : j.value("nodes", nlohmann::json::array()))
    c.nodes.push_back(ClusterNode{n.value("node", ""), n.value("gpus", 0), n.value("model", "")});
  c.price_per_hour = j.value("price_per_hour", 0.0);
  for (const auto& b : j.value("bundles", nlohmann::json::array())) c.bundles.push_back(b.get<std::string>());
  c.cost_so_far = j.value("cost_so_far", 0.0);
  if (j.contains("expires_in_s") && j["expires_in_s"].is_number()) c.expires_in_s = j["expires_in_s"].get<double>();
  return c;
}
}  // namespace

ClusterInfo create_cluster(const ClusterSpec& spec) {
  nlohmann::json a{{"gpus", spec.gpus},
                   {"gpu_model", spec.gpu_model},
                   {"region", spec.region},
                   {"max_price", spec.max_price},
                   {"tier", spec.tier},
                   {"min_reputation", spec.min_reputation},
                   {"duration_s", static_cast<double>(spec.duration.count())},
                   {"cpus_per_gpu", spec.cpus_per_gpu},
                   {"name", spec.name},
                   {"any_region", spec.any_region},
                   {"strategy", spec.strategy}};
  return cluster_of(nlohmann::json::parse(running().admin("cluster.create", a.dump())));
}

std::vector<ClusterInfo> list_clusters() {
  std::vector<ClusterInfo> out;
  for (const auto& j : nlohmann::json::parse(running().admin("cluster.list", "{}"))) out.push_back(cluster_of(j));
  return out;
}

void delete_cluster(const std::string& id) { (void)running().admin("cluster.delete", nlohmann::json{{"id", id}}.dump()); }

std::vector<LedgerEntry> ledger() {
  std::vector<LedgerEntry> out;
  for (const auto& e : nlohmann::json::parse(running().admin("ledger", "{}")))
    out.push_back(LedgerEntry{e.value("kind", ""), e.value("name", ""), e.value("gpu_seconds", 0.0), e.value("cost", 0.0)});
  return out;
}

void kv_put(const std::string& key, const std::string& value) { running().kv_put(key, value); }

std::optional<std::string> kv_get(const std::string& key) { return running().kv_get(key); }

TransferStats transfer_stats() {
  auto c = runtime::transport::process_data_client();
  if (!c) return {};
  auto s = c->stats();
  return TransferStats{s.bytes, s.seconds, s.fetches, s.last_bytes, s.last_seconds, s.relayed, s.punched};
}

std::vector<GpuAssignment> current_gpus() {
  std::vector<GpuAssignment> out;
  if (const auto* ctx = worker::current_context())
    for (const auto& [d, f] : ctx->gpus) out.push_back(GpuAssignment{static_cast<int>(d), f});
  return out;
}

std::string current_node() { return core::is_running() ? core::current().current_node() : "driver"; }

std::string current_host() { return running().advertised_host(); }

std::int64_t live_objects() { return core::ObjectEntry::live_entries.load(); }

SpotCheckStats spot_checks() {
  const auto& c = running().spot_check_counts();
  auto n = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return SpotCheckStats{running().spot_check_draws(), n(c.agreed), n(c.settled), n(c.unsettled), n(c.unchecked), n(c.extra_runs)};
}

}  // namespace iogrid
