#include "runtime/embedded_runtime.hpp"

#include <unistd.h>

#include <atomic>
#include <caf/all.hpp>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "gpu/devices.hpp"
#include "iogrid/core/errors.hpp"
#include "runtime/cluster/dashboard.hpp"
#include "runtime/export_table.hpp"
#include "runtime/head_actor.hpp"
#include "runtime/job_actor.hpp"
#include "runtime/messages.hpp"
#include "runtime/node_actor.hpp"
#include "runtime/object_store.hpp"
#include "runtime/node_summary.hpp"
#include "runtime/submitter_core.hpp"
#include "runtime/task_submitter.hpp"
#include "worker/work_source.hpp"

namespace iogrid::runtime {

namespace {

std::int64_t physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? std::int64_t(pages) * size : std::int64_t(8) << 30;
}

sched::Node to_node(const NodeSpec& o, std::uint32_t index) {
  sched::Node n;
  n.index = index;
  n.name = o.name.empty() ? "node-" + std::to_string(index) : o.name;
  double cpus = o.num_cpus > 0 ? o.num_cpus : double(std::max(1u, std::thread::hardware_concurrency()));
  double mem = o.memory_gib > 0 ? o.memory_gib : double(physical_memory_bytes()) / double(1 << 30);
  n.total.cpus = sched::to_milli(cpus);
  n.total.memory_mib = static_cast<std::int64_t>(mem * 1024);
  for (const auto& [k, v] : o.resources) n.total.custom[k] = sched::to_milli(v);
  for (const auto& g : o.gpus) {
    if (g.count < 0) throw core::Error("iogrid: node '" + n.name + "' declares a negative GPU count");
    for (int i = 0; i < g.count; ++i) {
      sched::Gpu gpu;
      gpu.model = g.model;
      gpu.memory_mib = static_cast<std::int64_t>(g.memory_gib * 1024);
      gpu.compute_capability = g.compute_capability;
      gpu.tflops = g.tflops;
      n.gpus.push_back(gpu);
    }
  }
  n.available = n.total;
  n.labels = o.labels;
  n.price_per_gpu_hour = o.price_per_gpu_hour;
  n.reputation = o.reputation;
  return n;
}

}  // namespace

class EmbeddedRuntime final : public SubmitterCore {
 public:
  explicit EmbeddedRuntime(const EmbeddedOptions& opts) {
    cfg_.set("scheduler.max-threads", 2);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);

    auto node_opts = opts.nodes;
    if (node_opts.empty()) {
      // One node with this machine's resources, its GPUs included (NVML; none without a driver). They count as
      // verified: the machine is the user's own.
      auto& self = node_opts.emplace_back();
      for (const auto& d : gpu::detect_devices()) {
        GpuSpec g;
        g.model = d.model;
        g.memory_gib = d.memory_gib;
        g.compute_capability = d.compute_capability;
        self.gpus.push_back(g);
      }
    }
    sched::ClusterView view;
    std::filesystem::path spill_root = opts.spill_dir.empty()
                                           ? std::filesystem::temp_directory_path() / ("iogrid-spill-" + std::to_string(getpid()))
                                           : std::filesystem::path(opts.spill_dir);
    auto default_store = physical_memory_bytes() / 4 / std::int64_t(node_opts.size());
    for (std::uint32_t i = 0; i < node_opts.size(); ++i) {
      auto n = to_node(node_opts[i], i);
      for (std::uint32_t j = 0; j < i; ++j)
        if (view.nodes[j].name == n.name) throw core::Error("iogrid: two nodes are named '" + n.name + "'");
      auto cap = node_opts[i].object_store_bytes > 0 ? node_opts[i].object_store_bytes : default_store;
      stores_.push_back(std::make_shared<ObjectStore>(n.name, cap, spill_root / n.name));
      view.nodes.push_back(std::move(n));
    }
    auto history = std::make_shared<head::History>(":memory:");
    head_ = spawn_head(*sys_, view, sched::kDefaultPolicy, history);
    std::vector<caf::actor> node_actors;
    for (const auto& n : view.nodes) {
      worker::WorkerContext ctx;
      ctx.node_index = n.index;
      ctx.node_name = n.name;
      node_actors.push_back(spawn_node(*sys_, head_, ctx));
    }
    nodes_ = node_actors;
    caf::anon_send(head_, nodes_atom::value, std::move(node_actors));
    job_ = spawn_job(*sys_, head_, "job-1");

    TaskSubmitter::Hooks hooks;
    hooks.request_lease = [job = job_](LeaseRequest r) { caf::anon_send(job, lease_atom::value, std::move(r)); };
    hooks.store_of = [this](std::uint32_t node) { return stores_.at(node); };
    hooks.new_entry = [this] { return new_entry(); };
    hooks.verify_fraction = opts.verify_fraction;
    hooks.check_seed = opts.verify_seed;
    // Spot checks reach the embedded head at once (reputation, history), whether or not a page is open.
    hooks.checked = [head = head_](const CheckRecord& r) {
      caf::anon_send(head, task_report_atom::value, nlohmann::json{{"checks", nlohmann::json::array({r.to_json()})}}.dump());
    };
    submitter_ = std::make_unique<TaskSubmitter>(std::move(hooks), opts.lease_idle);
    if (opts.dashboard_port >= 0) {
      // The page and API of a cluster's head, for this program's embedded cluster (read-only, 127.0.0.1).
      cluster::DashboardSource source;
      // The driver's tasks reach the head (for the page's task counts, timeline and failures) as the page asks.
      // (Called from the dashboard's one thread.)
      auto report = [head = head_, stats = &submitter_->stats(), cursor = std::make_shared<TaskStats::Cursor>()] {
        caf::anon_send(head, task_report_atom::value,
                       stats->report(*cursor).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      };
      source.status = [sys = sys_.get(), head = head_, report] {
        report();
        caf::scoped_actor self{*sys};
        std::string doc;
        std::string failure = "iogrid: the embedded head did not answer within 5 s";
        self->request(head, std::chrono::seconds(5), status_atom::value)
            .receive([&](const std::string& d) { doc = d; failure.clear(); }, [&](caf::error&) {});
        if (!failure.empty()) throw core::Error(failure);
        return doc;
      };
      source.admin = [sys = sys_.get(), head = head_, report](const std::string& command, const std::string& args,
                                                              const std::string& who) {
        if (command == "tasks" || command == "actors") report();
        caf::scoped_actor self{*sys};
        bool ok = false;
        std::string body = "iogrid: the embedded head did not answer within 5 s";
        self->request(head, std::chrono::seconds(5), ui_admin_atom::value, command, args, who)
            .receive([&](bool k, const std::string& b) { ok = k; body = b; }, [&](caf::error&) {});
        if (!ok) throw core::Error(body);
        return body;
      };
      source.history = history;
      // Open (no login): it is this program's own cluster, on 127.0.0.1.
      dashboard_ = std::make_unique<cluster::Dashboard>(static_cast<std::uint16_t>(opts.dashboard_port), "127.0.0.1",
                                                        std::move(source));
      std::cerr << "iogrid: dashboard on http://127.0.0.1:" << dashboard_->port() << "/" << std::endl;
    }
  }

  ~EmbeddedRuntime() override { stop(); }

  void stop() override {
    if (stopped_.exchange(true)) return;
    dashboard_.reset();  // it asks the head actor for the status
    submitter_->shutdown();
    for (auto& n : nodes_) caf::anon_send_exit(n, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(job_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(head_, caf::exit_reason::user_shutdown);
    nodes_.clear();
    job_ = nullptr;
    head_ = nullptr;
    sys_.reset();  // waits for every actor, and so for every worker thread to finish its task
  }

  std::uint32_t put_node() const override {
    const auto* ctx = worker::current_context();
    return ctx ? ctx->node_index : 0;
  }

  std::shared_ptr<void> export_ref(core::ObjectEntry* e) override { return exports_.export_ref(e); }
  core::RefHandle import_ref(std::uint64_t id) override { return exports_.import_ref(id); }

  std::string current_node() const override {
    const auto* ctx = worker::current_context();
    return ctx ? ctx->node_name : std::string("driver");
  }

  void kv_put(const std::string& key, const std::string& value) override { caf::anon_send(head_, kv_put_atom::value, key, value); }
  std::optional<std::string> kv_get(const std::string& key) override {
    caf::scoped_actor self{*sys_};
    std::optional<std::string> out;
    self->request(head_, caf::infinite, kv_get_atom::value, key)
        .receive([&](const std::vector<std::string>& v) {
                   if (!v.empty()) out = v.front();
                 },
                 [&](caf::error& e) { throw core::Error("iogrid: head did not answer: " + sys_->render(e)); });
    return out;
  }

  std::string admin(const std::string& command, const std::string& args) override {
    caf::scoped_actor self{*sys_};
    std::string out;
    self->request(head_, caf::infinite, admin_atom::value, command, args)
        .receive(
            [&](bool ok, const std::string& body) {
              if (!ok) throw core::Error(body);
              out = body;
            },
            [&](caf::error& e) { throw core::Error("iogrid: head did not answer: " + sys_->render(e)); });
    return out;
  }

  std::vector<NodeSummary> describe() override {
    caf::scoped_actor self{*sys_};
    sched::ClusterView view;
    self->request(head_, caf::infinite, view_atom::value)
        .receive([&](const sched::ClusterView& v) { view = v; },
                 [&](caf::error& e) { throw core::Error("iogrid: head did not answer: " + sys_->render(e)); });
    std::vector<NodeSummary> out;
    for (const auto& n : view.nodes) {
      auto i = summarize(n);
      auto st = stores_[n.index]->stats();
      i.object_store_used_bytes = st.used_bytes;
      i.object_store_capacity_bytes = st.capacity_bytes;
      i.spilled_bytes = st.spilled_bytes;
      out.push_back(std::move(i));
    }
    return out;
  }

 private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::actor head_;
  std::unique_ptr<cluster::Dashboard> dashboard_;
  caf::actor job_;
  std::vector<caf::actor> nodes_;
  std::vector<std::shared_ptr<ObjectStore>> stores_;
  ExportTable exports_;
  std::atomic<bool> stopped_{false};
};

std::unique_ptr<SubmitterCore> start_embedded(const EmbeddedOptions& opts) { return std::make_unique<EmbeddedRuntime>(opts); }

}  // namespace iogrid::runtime
