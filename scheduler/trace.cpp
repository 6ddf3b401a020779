#include "scheduler/trace.hpp"

#include <algorithm>
#include <cctype>
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

// One CSV record (RFC 4180 quoting: "a,b" is one cell, "" inside quotes is a quote); a trailing \r is dropped.
std::vector<std::string> split_csv(const std::string& line, std::size_t line_no) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell.push_back(c);
      }
    } else if (c == '"' && cell.empty()) {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cell);
      cell.clear();
    } else if (c != '\r') {
      cell.push_back(c);
    }
  }
  if (quoted) throw std::invalid_argument("line " + std::to_string(line_no) + ": a quoted cell is not closed");
  out.push_back(cell);
  return out;
}

std::string trim(std::string v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  std::size_t b = 0;
  while (b < v.size() && (v[b] == ' ' || v[b] == '\t')) ++b;
  return v.substr(b);
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
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // a UTF-8 byte order mark
  auto header = split_csv(line, 1);
  for (std::size_t i = 0; i < header.size(); ++i) t.columns.emplace(trim(header[i]), i);
  for (const auto& r : required)
    if (!t.columns.count(r)) throw std::invalid_argument("line 1: missing column '" + r + "'");
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line == "\r") continue;
    t.rows.emplace_back(n, split_csv(line, n));
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
  const auto v = trim(cell(t, row, col));
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
  auto t = read_table(in, {"cpu_milli", "gpu"});
  const bool has_memory = t.columns.count("memory_mib") > 0;
  std::vector<TraceNode> out;
  for (const auto& row : t.rows) {
    TraceNode n;
    n.sn = trim(cell(t, row, "sn"));
    if (n.sn.empty()) n.sn = "node-" + std::to_string(out.size());
    n.cpu_milli = number<Milli>(t, row, "cpu_milli", 0, true);
    // Without a memory column memory constrains nothing (tasks' memory requests always fit).
    n.memory_mib = has_memory ? number<std::int64_t>(t, row, "memory_mib", 0, true) : kUnlimitedMemoryMib;
    n.gpus = number<int>(t, row, "gpu", 0, true);
    n.model = trim(cell(t, row, "model"));
    n.region = trim(cell(t, row, "region"));
    n.price = number<double>(t, row, "price", 0, false);
    n.reputation = number<double>(t, row, "reputation", 1.0, false);
    if (n.cpu_milli < 0 || n.memory_mib < 0 || n.gpus < 0 || n.gpus > 1024)
      throw std::invalid_argument("line " + std::to_string(row.first) + ": capacity out of range (negative, or more than 1024 GPUs)");
    out.push_back(std::move(n));
  }
  return out;
}

std::vector<TraceTask> read_tasks_csv(std::istream& in) {
  auto t = read_table(in, {"cpu_milli", "num_gpu"});
  const bool has_creation = t.columns.count("creation_time") > 0;
  std::vector<TraceTask> out;
  for (const auto& row : t.rows) {
    TraceTask k;
    const auto at = [&](const std::string& col) { return "line " + std::to_string(row.first) + ": column '" + col + "' "; };
    k.name = trim(cell(t, row, "name"));
    if (k.name.empty()) k.name = "task-" + std::to_string(out.size());
    k.cpu_milli = number<Milli>(t, row, "cpu_milli", 0, true);
    k.memory_mib = number<std::int64_t>(t, row, "memory_mib", 0, false);
    k.num_gpu = number<int>(t, row, "num_gpu", 0, true);
    // gpu_milli: the share of each GPU; absent or empty means whole GPUs.
    k.gpu_milli = number<Milli>(t, row, "gpu_milli", k.num_gpu > 0 ? kOne : 0, false);
    k.gpu_spec = trim(cell(t, row, "gpu_spec"));
    k.qos = trim(cell(t, row, "qos"));
    k.region = trim(cell(t, row, "region"));
    k.max_price = number<double>(t, row, "max_price", number<double>(t, row, "price", 0, false), false);
    // Without creation times tasks arrive in file order, one per time unit; without a deletion time a task
    // never leaves.
    k.creation_time = has_creation ? number<std::int64_t>(t, row, "creation_time", 0, false) : std::int64_t(out.size());
    k.deletion_time = number<std::int64_t>(t, row, "deletion_time", kNeverLeaves, false);
    if (k.cpu_milli < 0) throw std::invalid_argument(at("cpu_milli") + "is negative");
    if (k.memory_mib < 0) throw std::invalid_argument(at("memory_mib") + "is negative");
    if (k.num_gpu < 0 || k.num_gpu > 1024) throw std::invalid_argument(at("num_gpu") + "must be within 0..1024");
    if (k.gpu_milli < 0 || k.gpu_milli > kOne) throw std::invalid_argument(at("gpu_milli") + "must be within 0..1000");
    if (k.num_gpu > 1 && k.gpu_milli != kOne && k.gpu_milli != 0)
      throw std::invalid_argument(at("gpu_milli") + "must be 1000 for a task of several GPUs (shares of one GPU only)");
    if (k.num_gpu > 0 && k.gpu_milli == 0) k.gpu_milli = kOne;
    if (k.deletion_time < k.creation_time) k.deletion_time = k.creation_time;  // left before it came: leaves at once
    out.push_back(std::move(k));
  }
  std::stable_sort(out.begin(), out.end(), [](const TraceTask& a, const TraceTask& b) { return a.creation_time < b.creation_time; });
  return out;
}

namespace {
// A text cell as RFC 4180 writes it: quoted (quotes doubled) when it holds a separator, a quote, a line break
// or spaces at either end, so that it reads back as it was.
struct Cell {
  const std::string& v;
};
std::ostream& operator<<(std::ostream& out, Cell c) {
  const auto& v = c.v;
  const bool quote = v.find_first_of(",\"\r\n") != std::string::npos ||
                     (!v.empty() && (std::isspace(static_cast<unsigned char>(v.front())) ||
                                     std::isspace(static_cast<unsigned char>(v.back()))));
  if (!quote) return out << v;
  out << '"';
  for (char ch : v) {
    if (ch == '"') out << '"';
    out << ch;
  }
  return out << '"';
}
}  // namespace

void write_nodes_csv(std::ostream& out, const std::vector<TraceNode>& nodes) {
  out << "sn,cpu_milli,memory_mib,gpu,model,region,price,reputation\n";
  for (const auto& n : nodes)
    out << Cell{n.sn} << ',' << n.cpu_milli << ',' << n.memory_mib << ',' << n.gpus << ',' << Cell{n.model} << ','
        << Cell{n.region} << ',' << n.price << ',' << n.reputation << '\n';
}

void write_tasks_csv(std::ostream& out, const std::vector<TraceTask>& tasks) {
  out << "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,creation_time,deletion_time\n";
  for (const auto& k : tasks) {
    out << Cell{k.name} << ',' << k.cpu_milli << ',' << k.memory_mib << ',' << k.num_gpu << ',' << k.gpu_milli << ','
        << Cell{k.gpu_spec} << ',' << Cell{k.qos} << ',' << k.creation_time << ',';
    if (k.deletion_time != kNeverLeaves) out << k.deletion_time;
    out << '\n';
  }
}

TraceMix parse_mix(const std::string& name) {
  if (name == "default") return TraceMix::standard;
  if (name == "sharing") return TraceMix::sharing;
  if (name == "constrained") return TraceMix::constrained;
  throw std::invalid_argument("unknown trace mix '" + name + "' (choose default, sharing or constrained)");
}

namespace {

// A value drawn from (value, weight) pairs.
template <class Rng>
Milli draw(Rng& rng, const std::vector<std::pair<Milli, double>>& table) {
  std::vector<double> w;
  for (const auto& [v, p] : table) w.push_back(p);
  std::discrete_distribution<std::size_t> d(w.begin(), w.end());
  return table[d(rng)].first;
}

// The shapes of production GPU-sharing traces (after the Alibaba 2023 "openb" traces the FGD paper replays):
// by count 13% of tasks use no GPU, 37% a share of one GPU, 46% one whole GPU, 4% several (2, 4 or 8); shares
// cluster at a few sizes (a third of them near half a GPU); tasks with GPUs ask 4-16 CPUs per GPU, a few far
// more, and CPU-only tasks are CPU-heavy.
const std::vector<std::pair<Milli, double>> kShares = {
    {50, 3},   {100, 3}, {110, 4}, {160, 4}, {220, 8}, {230, 6}, {250, 4}, {270, 3}, {320, 8},
    {440, 4},  {460, 14}, {470, 10}, {500, 8}, {550, 4}, {590, 2}, {650, 4}, {810, 5}, {900, 2}};
const std::vector<std::pair<Milli, double>> kShareCpus = {{1000, 2}, {2000, 6}, {4000, 30}, {6000, 20}, {8000, 30}, {12000, 9}, {16000, 3}};
const std::vector<std::pair<Milli, double>> kGpuCpus = {{3152, 7}, {4000, 15}, {8000, 20}, {12000, 30}, {16000, 20}, {18708, 8}};
const std::vector<std::pair<Milli, double>> kCpuOnly = {{2000, 10}, {4000, 20}, {8000, 30}, {12500, 10}, {16000, 15}, {20000, 5}, {32000, 10}};

}  // namespace

SyntheticTrace generate_trace(std::size_t nodes, std::size_t tasks, std::uint64_t seed, TraceMix mix, bool dense_nodes) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); };
  SyntheticTrace t;
  // Machine kinds: (weight, GPUs, model, CPUs, memory GiB, price per GPU-hour). The default mix: 2- to 8-GPU
  // machines of seven models with 64-128 CPUs (about 18 CPUs per GPU on average: GPU machines in production
  // traces are CPU-rich); `dense_nodes`: every node an 8-GPU box (the 10,000-node, 80,000-GPU scale bench).
  struct Kind {
    double weight;
    int gpus;
    const char* model;
    int cpus;
    int mem_gib;
    double price;
  };
  const std::vector<Kind> kinds = {{0.30, 8, "V100M32", 128, 512, 1.2}, {0.12, 8, "A100", 128, 1024, 1.8},
                                   {0.10, 8, "V100M16", 96, 384, 0.9},  {0.16, 4, "P100", 96, 256, 0.5},
                                   {0.08, 4, "A10", 64, 256, 0.6},      {0.16, 2, "T4", 96, 384, 0.35},
                                   {0.08, 2, "L4", 64, 256, 0.45}};
  const std::vector<Kind> dense = {{0.25, 8, "A100", 96, 768, 1.8}, {0.15, 8, "H100", 128, 1024, 3.2}, {0.15, 8, "L40S", 64, 512, 1.1},
                                   {0.15, 8, "V100", 64, 384, 0.9},  {0.15, 8, "A10", 64, 256, 0.6},   {0.15, 8, "RTX4090", 64, 256, 0.45}};
  const auto& table = dense_nodes ? dense : kinds;
  std::vector<double> weights;
  for (const auto& k : table) weights.push_back(k.weight);
  std::discrete_distribution<std::size_t> pick_kind(weights.begin(), weights.end());
  const char* regions[] = {"eu", "us", "asia"};
  std::int64_t total_gpus = 0;
  for (std::size_t i = 0; i < nodes; ++i) {
    const auto& k = table[pick_kind(rng)];
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
  // Models a constrained task may ask for: one model, or two of the same family.
  const char* specs[] = {"V100M32|V100M16", "V100M32", "A100", "P100", "T4", "A10|L4"};
  const char* dense_specs[] = {"A100|H100", "H100", "L40S", "V100", "A10|RTX4090"};
  std::exponential_distribution<double> gap(1.0);  // arrivals: one per time unit on average
  // Lifetimes: one task arrives per time unit and a task holds ~0.55 GPU on average, so a mean lifetime of
  // 0.8 x GPUs / 0.55 time units keeps the cluster about 80% allocated once it is warm.
  std::exponential_distribution<double> life(1.0 / std::max(2000.0, 0.8 * double(total_gpus) / 0.55));
  std::discrete_distribution<int> pick_kind_of_task({13, 37, 46, 1.5, 1.0, 1.5});
  double now = 0;
  for (std::size_t i = 0; i < tasks; ++i) {
    TraceTask k;
    k.name = "task-" + std::to_string(i);
    int kind = pick_kind_of_task(rng);
    if (mix == TraceMix::sharing && kind == 2) kind = 1;  // every single-GPU task shares its GPU
    switch (kind) {
      case 0: k.num_gpu = 0; k.gpu_milli = 0; k.cpu_milli = draw(rng, kCpuOnly); break;
      case 1: k.num_gpu = 1; k.gpu_milli = draw(rng, kShares); k.cpu_milli = draw(rng, kShareCpus); break;
      case 2: k.num_gpu = 1; k.gpu_milli = kOne; k.cpu_milli = draw(rng, kGpuCpus); break;
      default: {
        k.num_gpu = kind == 3 ? 2 : kind == 4 ? 4 : 8;
        k.gpu_milli = kOne;
        k.cpu_milli = k.num_gpu == 8 ? (rng() % 2 ? 88000 : 64000) : Milli(k.num_gpu) * draw(rng, kGpuCpus);
      }
    }
    k.memory_mib = k.cpu_milli / kOne * 4096;
    if (k.num_gpu > 0 && (mix == TraceMix::constrained ? rng() % 3 == 0 : rng() % 50 == 0))
      k.gpu_spec = dense_nodes ? dense_specs[rng() % 5] : specs[rng() % 6];
    k.qos = k.num_gpu == 0 || k.gpu_milli < kOne ? "BE" : "LS";
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
  if (!t.region.empty()) r.preferred_regions.push_back(t.region);
  r.max_price = t.max_price;
  return r;
}

}  // namespace iogrid::sched
