#include "bench/report.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <nlohmann/json.hpp>

namespace iogrid::bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::function<bool(const std::string&)> selection(const Options& o, const std::string& suite,
                                                  const std::vector<std::string>& names) {
  for (const auto& n : o.only)
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      std::string all;
      for (const auto& k : names) all += (all.empty() ? "" : ", ") + k;
      throw std::invalid_argument("bench " + suite + " has no figure '" + n + "' (its figures: " + all + ")");
    }
  return [only = o.only](const std::string& n) {
    return only.empty() || std::find(only.begin(), only.end(), n) != only.end();
  };
}

std::map<std::string, double> parse_tagged_line(const std::string& out, const std::string& tag) {
  std::map<std::string, double> r;
  const auto p = out.rfind(tag + " ");
  if (p == std::string::npos) return r;
  std::istringstream in(out.substr(p + tag.size() + 1, out.find('\n', p) - p - tag.size() - 1));
  for (std::string kv; in >> kv;)
    if (auto eq = kv.find('='); eq != std::string::npos) r[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
  return r;
}

void progress(const Options& o, const std::string& line) {
  std::cerr << "  .. " << line << std::endl;  // stderr: with --json, stdout holds the JSON lines alone
}

void print(const std::string& suite, const Options& o, const std::vector<Figure>& figures) {
  if (o.json) {
    for (const auto& f : figures) {
      nlohmann::json j{{"suite", suite}, {"name", f.name},          {"value", f.value},
                       {"unit", f.unit},  {"higher_is_better", f.higher_is_better}, {"mode", o.mode}};
      std::cout << j.dump() << "\n";
    }
    return;
  }
  std::printf("%-48s %12s  %-8s %s\n", (suite + " (" + o.mode + ")").c_str(), "median", "unit", "runs");
  for (const auto& f : figures) {
    std::string runs;
    for (double r : f.runs) {
      char b[32];
      std::snprintf(b, sizeof b, "%.4g ", r);
      runs += b;
    }
    std::printf("%-48s %12.2f  %-8s %s\n", f.name.c_str(), f.value, f.unit.c_str(), runs.c_str());
  }
}

}  // namespace iogrid::bench
