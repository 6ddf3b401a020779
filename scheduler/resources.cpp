#include "scheduler/resources.hpp"

#include <cmath>
#include <sstream>

namespace iogrid::sched {

Milli to_milli(double v) { return static_cast<Milli>(std::llround(v * 1000.0)); }
double from_milli(Milli v) { return static_cast<double>(v) / 1000.0; }

std::vector<std::string> split_models(const std::string& models) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : models) {
    if (c == '|') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

namespace {
std::string num(Milli m) {
  std::ostringstream os;
  os << from_milli(m);
  return os.str();
}
std::string join_models(const std::vector<std::string>& ms) {
  std::string s;
  for (std::size_t i = 0; i < ms.size(); ++i) s += (i ? "|" : "") + ms[i];
  return s;
}
}  // namespace

std::string ResourceRequest::describe() const {
  std::ostringstream os;
  os << "{CPU " << num(cpus);
  if (memory_mib) os << ", memory " << memory_mib / 1024.0 << " GiB";
  if (gpus) {
    os << ", GPU " << num(gpus);
    if (!gpu_models.empty()) os << " x " << join_models(gpu_models);
    if (min_gpu_memory_mib) os << " >= " << min_gpu_memory_mib / 1024.0 << " GiB";
    if (min_compute_capability > 0) os << " cc >= " << min_compute_capability;
  }
  for (const auto& [k, v] : custom) os << ", " << k << " " << num(v);
  for (const auto& [k, v] : labels) os << ", label " << k << "=" << v;
  if (!node.empty()) os << ", node " << node;
  if (!avoid_nodes.empty()) {
    os << ", not on ";
    for (std::size_t i = 0; i < avoid_nodes.size(); ++i) os << (i ? "," : "") << avoid_nodes[i];
  }
  if (min_gpu_tflops > 0) os << ", GPU >= " << min_gpu_tflops << " TFLOPS";
  if (allow_unverified) os << ", unverified GPUs allowed";
  if (max_price > 0) os << ", price <= " << max_price << "/GPU-h";
  if (min_reputation > 0) os << ", reputation >= " << min_reputation;
  if (!preferred_regions.empty()) os << ", prefers " << join_models(preferred_regions);
  if (reservation) os << ", in reservation " << reservation;
  if (reservation && bundle >= 0) os << " bundle " << bundle;
  if (priority) os << ", priority " << priority;
  os << "}";
  return os.str();
}

std::string ResourceRequest::key() const {
  // Hot (the scheduler interns every request by it): plain appends, no stream.
  std::string k;
  k.reserve(96);
  auto num = [&](auto v) {
    k += std::to_string(v);
    k += '/';
  };
  num(cpus);
  num(memory_mib);
  num(gpus);
  for (const auto& m : gpu_models) k += m + "|";
  k += '/';
  num(min_gpu_memory_mib);
  num(min_compute_capability);
  for (const auto& [n, v] : custom) k += n + "=" + std::to_string(v) + ",";
  k += '/';
  for (const auto& [n, v] : labels) k += n + "=" + v + ",";
  k += '/';
  k += node;
  k += '/';
  for (const auto& n : avoid_nodes) k += n + "|";
  k += '/';
  num(min_gpu_tflops);
  num(int(allow_unverified));
  num(max_price);
  num(int(tier));
  num(min_reputation);
  for (const auto& r : preferred_regions) k += r + "|";
  k += '/';
  num(reservation);
  num(bundle);
  num(priority);
  return k;
}

double gpu_count(const Allocation& a) {
  Milli m = 0;
  for (const auto& [d, f] : a.gpus) m += f;
  return from_milli(m);
}

const std::string& Node::region() const {
  static const std::string none;
  auto it = labels.find(kRegionLabel);
  return it == labels.end() ? none : it->second;
}

std::string Node::describe() const {
  std::ostringstream os;
  os << "'" << name << "' (" << num(total.cpus) << " CPU";
  if (total.memory_mib) os << ", " << total.memory_mib / 1024 << " GiB";
  std::map<std::string, int> counts;
  for (const auto& g : gpus) counts[g.model + " " + std::to_string(g.memory_mib / 1024) + " GiB"]++;
  for (const auto& [m, c] : counts) os << ", " << c << " x " << m;
  for (const auto& [k, v] : total.custom) os << ", " << k << " " << num(v);
  for (const auto& [k, v] : labels) os << ", " << k << "=" << v;
  if (price_per_gpu_hour > 0) os << ", " << price_per_gpu_hour << "/GPU-h";
  if (reputation < 1.0) os << ", reputation " << reputation;
  if (!alive) os << ", dead";
  os << ")";
  return os.str();
}

}  // namespace iogrid::sched
