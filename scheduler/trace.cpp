#include "scheduler/trace.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <istream>
#include <map>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace iogrid::sched {

namespace {

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  for (char c : line) {
    if (c == ',') {
      out.push_back(cell);
      cell.clear();
    } else if (c != '\r') {
      cell.push_back(c);
    }
  }
  out.push_back(cell);
  return out;
}

struct Table {
  std::map<std::string, std::size_t> columns;
  std::vector<std::pair<std::size_t, std::vector<std::string>>> rows;  // (line number, cells)
};

Table read_table(std::istream& in, const std::vector<std::string>& required) {
  Table t;
  std::string line;
  std::size_t n = 0;
  if (!std::getline(in, line)) throw std::invalid_argument("empty trace: no header line");
  ++n;
  auto header = split_csv(line);
  for (std::size_t i = 0; i < header.size(); ++i) t.columns[header[i]] = i;
  for (const auto& r : required)
    if (!t.columns.count(r)) throw std::invalid_argument("line 1: missing column '" + r + "'");
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line == "\r") continue;
    t.rows.emplace_back(n, split_csv(line));
  }
  return t;
}

const std::string& cell(const Table& t, const std::pair<std::size_t, std::vector<std::string>>& row, const std::string& col) {
  static const std::string empty;
  auto it = t.columns.find(col);
  if (it == t.columns.end() || it->second >= row.second.size()) return empty;
  return row.second[it->second];
}

template <class T>
T number(const Table& t, const std::pair<std::size_t, std::vector<std::string>>& row, const std::string& col, T fallback,
         bool required) {
  const auto& v = cell(t, row, col);
  if (v.empty()) {
    if (required) throw std::invalid_argument("line " + std::to_string(row.first) + ": column '" + col + "' is empty");
    return fallback;
  }
  try {
    std::size_t used = 0;
    double d = std::stod(v, &used);
    if (used != v.size()) throw std::invalid_argument("trailing characters");
    if (!std::isfinite(d)) throw std::invalid_argument("not finite");
    if constexpr (std::is_integral_v<T>) {
      // The range of T, with a margin for the double's rounding at its ends.
      if (!(d >= double(std::numeric_limits<T>::min()) && d <= double(std::numeric_limits<T>::max()) * 0.999))
        throw std::invalid_argument("out of range");
    }
    return static_cast<T>(d);
  } catch (const std::exception&) {
    throw std::invalid_argument("line " + std::to_string(row.first) + ": column '" + col + "' is not a number: '" + v + "'");
  }
}

}  // namespace

std::vector<TraceNode> read_nodes_csv(std::istream& in) {
  auto t = read_table(in, {"sn", "cpu_milli", "memory_mib", "gpu", "model"});
  std::vector<TraceNode> out;
  for (const auto& row : t.rows) {
    TraceNode n;
    n.sn = cell(t, row, "sn");
    n.cpu_milli = number<Milli>(t, row, "cpu_milli", 0, true);
    n.memory_mib = number<std::int64_t>(t, row, "memory_mib", 0, true);
    n.gpus = number<int>(t, row, "gpu", 0, true);
    n.model = cell(t, row, "model");
    n.region = cell(t, row, "region");
    n.price = number<double>(t, row, "price", 0, false);
    n.reputation = number<double>(t, row, "reputation", 1.0, false);
    if (n.cpu_milli < 0 || n.memory_mib < 0 || n.gpus < 0)
      throw std::invalid_argument("line " + std::to_string(row.first) + ": negative capacity");
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<TraceTask> read_tasks_csv(std::istream& in) {
  auto t = read_table(in, {"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "creation_time", "deletion_time"});
  std::vector<TraceTask> out;
  for (const auto& row : t.rows) {
    TraceTask k;
    k.name = cell(t, row, "name");
    k.cpu_milli = number<Milli>(t, row, "cpu_milli", 0, true);
    k.memory_mib = number<std::int64_t>(t, row, "memory_mib", 0, true);
    k.num_gpu = number<int>(t, row, "num_gpu", 0, true);
    k.gpu_milli = number<Milli>(t, row, "gpu_milli", 0, false);
    k.gpu_spec = cell(t, row, "gpu_spec");
    k.creation_time = number<std::int64_t>(t, row, "creation_time", 0, true);
    k.deletion_time = number<std::int64_t>(t, row, "deletion_time", 0, false);
    if (k.num_gpu < 0 || k.gpu_milli < 0 || k.gpu_milli > kOne)
      throw std::invalid_argument("line " + std::to_string(row.first) + ": num_gpu must be >= 0 and gpu_milli within 0..1000");
    out.push_back(std::move(k));
  }
  std::stable_sort(out.begin(), out.end(), [](const TraceTask& a, const TraceTask& b) { return a.creation_time < b.creation_time; });
  return out;
}

void write_nodes_csv(std::ostream& out, const std::vector<TraceNode>& nodes) {
  out << "sn,cpu_milli,memory_mib,gpu,model,region,price,reputation\n";
  for (const auto& n : nodes)
    out << n.sn << ',' << n.cpu_milli << ',' << n.memory_mib << ',' << n.gpus << ',' << n.model << ',' << n.region << ','
        << n.price << ',' << n.reputation << '\n';
}

void write_tasks_csv(std::ostream& out, const std::vector<TraceTask>& tasks) {
  out << "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time\n";
  for (const auto& k : tasks)
    out << k.name << ',' << k.cpu_milli << ',' << k.memory_mib << ',' << k.num_gpu << ',' << k.gpu_milli << ',' << k.gpu_spec
        << ',' << k.creation_time << ',' << k.deletion_time << '\n';
}

TraceMix parse_mix(const std::string& name) {
  if (name == "default") return TraceMix::standard;
  if (name == "sharing") return TraceMix::sharing;
  throw std::invalid_argument("unknown trace mix '" + name + "' (choose default or sharing)");
}

SyntheticTrace generate_trace(std::size_t nodes, std::size_t tasks, std::uint64_t seed, TraceMix mix, bool dense_nodes) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); };
  SyntheticTrace t;
  // Machine kinds: (weight, GPUs, model, CPUs, memory GiB, price per GPU-hour).
  struct Kind {
    double weight;
    int gpus;
    const char* model;
    int cpus;
    int mem_gib;
    double price;
  };
  const Kind kinds[] = {{0.25, 8, "A100", 96, 768, 1.8}, {0.10, 8, "H100", 128, 1024, 3.2}, {0.20, 4, "V100", 64, 384, 0.9},
                        {0.20, 2, "T4", 32, 128, 0.35},   {0.15, 1, "RTX4090", 16, 64, 0.45}, {0.10, 0, "", 64, 256, 0}};
  const Kind dense[] = {{0.25, 8, "A100", 96, 768, 1.8}, {0.15, 8, "H100", 128, 1024, 3.2}, {0.15, 8, "L40S", 64, 512, 1.1},
                        {0.15, 8, "V100", 64, 384, 0.9},  {0.15, 8, "A10", 64, 256, 0.6},   {0.15, 8, "RTX4090", 64, 256, 0.45}};
  const char* regions[] = {"eu", "us", "asia"};
  std::discrete_distribution<int> pick_kind({0.25, 0.10, 0.20, 0.20, 0.15, 0.10});
  std::discrete_distribution<int> pick_dense({0.25, 0.15, 0.15, 0.15, 0.15, 0.15});
  std::int64_t total_gpus = 0;
  for (std::size_t i = 0; i < nodes; ++i) {
    const auto& k = dense_nodes ? dense[pick_dense(rng)] : kinds[pick_kind(rng)];
    total_gpus += k.gpus;
    TraceNode n;
    n.sn = "node-" + std::to_string(i);
    n.cpu_milli = Milli(k.cpus) * kOne;
    n.memory_mib = std::int64_t(k.mem_gib) * 1024;
    n.gpus = k.gpus;
    n.model = k.model;
    n.region = regions[rng() % 3];
    n.price = k.price * uniform(0.7, 1.3);
    n.reputation = uniform(0.5, 1.0);
    t.nodes.push_back(std::move(n));
  }
  // Task shapes after the Alibaba 2023 GPU-sharing trace: most tasks take a fraction of one GPU (of many
  // sizes), some a whole GPU, a few several, some none.
  const Milli fractions[] = {100, 200, 250, 300, 400, 500, 600, 700, 800};
  std::discrete_distribution<int> pick_shape({0.55, 0.17, 0.06, 0.04, 0.02, 0.16});
  std::exponential_distribution<double> gap(1.0);           // arrivals: one per time unit on average
  // Lifetimes: one task arrives per time unit and a task holds ~0.86 GPU on average, so a mean lifetime of
  // 0.8 x GPUs / 0.86 time units keeps the cluster about 80% allocated once it is warm.
  std::exponential_distribution<double> life(1.0 / std::max(2000.0, 0.8 * double(total_gpus) / 0.86));
  double now = 0;
  for (std::size_t i = 0; i < tasks; ++i) {
    TraceTask k;
    k.name = "task-" + std::to_string(i);
    if (mix == TraceMix::sharing) {
      // GPU sharing with few, large fractions and CPU-hungry tasks: leftovers are easy to strand.
      const Milli big_fractions[] = {300, 400, 500, 600, 700};
      const Milli cpus[] = {1, 2, 4, 8, 16};
      double r = uniform(0, 1);
      if (r < 0.6) k.num_gpu = 1, k.gpu_milli = big_fractions[rng() % 5], k.cpu_milli = 1000 * cpus[rng() % 5];
      else if (r < 0.8) k.num_gpu = 1, k.gpu_milli = 1000, k.cpu_milli = 1000 * cpus[1 + rng() % 4];
      else if (r < 0.9) {
        const int counts[] = {2, 4, 8};
        const Milli per_gpu[] = {2, 8, 16};
        k.num_gpu = counts[rng() % 3];
        k.gpu_milli = 1000;
        k.cpu_milli = 1000 * k.num_gpu * per_gpu[rng() % 3];
      } else {
        const Milli cpu_only[] = {4, 16, 32};
        k.num_gpu = 0, k.gpu_milli = 0, k.cpu_milli = 1000 * cpu_only[rng() % 3];
      }
    } else switch (pick_shape(rng)) {
      case 0: k.num_gpu = 1; k.gpu_milli = fractions[rng() % 9]; k.cpu_milli = 1000 * (1 + Milli(rng() % 8)); break;
      case 1: k.num_gpu = 1; k.gpu_milli = 1000; k.cpu_milli = 1000 * (4 + Milli(rng() % 8)); break;
      case 2: k.num_gpu = 2; k.gpu_milli = 1000; k.cpu_milli = 12000; break;
      case 3: k.num_gpu = 4; k.gpu_milli = 1000; k.cpu_milli = 24000; break;
      case 4: k.num_gpu = 8; k.gpu_milli = 1000; k.cpu_milli = 48000; break;
      default: k.num_gpu = 0; k.gpu_milli = 0; k.cpu_milli = 1000 * (1 + Milli(rng() % 16)); break;
    }
    k.memory_mib = k.cpu_milli / kOne * 4096;
    if (k.num_gpu > 0 && rng() % 5 == 0) k.gpu_spec = (rng() % 2) ? "A100|H100" : "V100|T4";
    now += gap(rng);
    k.creation_time = static_cast<std::int64_t>(now);
    k.deletion_time = k.creation_time + 1 + static_cast<std::int64_t>(life(rng));
    t.tasks.push_back(std::move(k));
  }
  return t;
}

ClusterView to_view(const std::vector<TraceNode>& nodes) {
  ClusterView v;
  for (std::uint32_t i = 0; i < nodes.size(); ++i) {
    const auto& t = nodes[i];
    Node n;
    n.index = i;
    n.name = t.sn;
    n.total.cpus = t.cpu_milli;
    n.total.memory_mib = t.memory_mib;
    for (int g = 0; g < t.gpus; ++g) n.gpus.push_back(Gpu{t.model, 0, 0, 0, true, kOne});
    n.available = n.total;
    if (!t.region.empty()) n.labels["region"] = t.region;
    n.price_per_gpu_hour = t.price;
    n.reputation = t.reputation;
    v.nodes.push_back(std::move(n));
  }
  return v;
}

ResourceRequest to_request(const TraceTask& t) {
  ResourceRequest r;
  r.cpus = t.cpu_milli;
  r.memory_mib = t.memory_mib;
  if (t.num_gpu == 1) r.gpus = t.gpu_milli > 0 ? t.gpu_milli : kOne;
  else if (t.num_gpu > 1) r.gpus = Milli(t.num_gpu) * kOne;
  r.gpu_models = split_models(t.gpu_spec);
  return r;
}

}  // namespace iogrid::sched
