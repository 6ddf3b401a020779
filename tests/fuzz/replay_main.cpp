// fuzz_replay: runs kept inputs through the fuzz targets without libFuzzer (any compiler, any sanitizer).
//   fuzz_replay TARGET [FILE|DIR]...     every seed of TARGET, then every file given (folders recursively)
//   fuzz_replay --seeds TARGET DIR       writes TARGET's seeds into DIR (scripts/fuzz starts from them)
//   fuzz_replay --list                   the targets
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include "fuzz.hpp"

namespace iogrid::fuzz {
namespace {
struct Entry {
  Target target;
  Seeds seeds;
};
std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> r;
  return r;
}
}  // namespace

bool add(const char* name, Target target, Seeds seeds) {
  registry()[name] = {target, seeds};
  return true;
}

}  // namespace iogrid::fuzz

namespace fs = std::filesystem;
using iogrid::fuzz::registry;

static std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int main(int argc, char** argv) {
  auto usage = [] {
    std::cerr << "usage: fuzz_replay TARGET [FILE|DIR]... | --seeds TARGET DIR | --list\ntargets:";
    for (const auto& [n, e] : registry()) std::cerr << " " << n;
    std::cerr << "\n";
    return 2;
  };
  if (argc < 2) return usage();
  std::string first = argv[1];
  if (first == "--list") {
    for (const auto& [n, e] : registry()) std::cout << n << "\n";
    return 0;
  }
  if (first == "--seeds") {
    if (argc != 4 || !registry().count(argv[2])) return usage();
    fs::create_directories(argv[3]);
    int i = 0;
    for (const auto& s : registry()[argv[2]].seeds()) {
      std::ostringstream name;
      name << "seed-" << i++;
      std::ofstream(fs::path(argv[3]) / name.str(), std::ios::binary) << s;
    }
    std::cout << "wrote " << i << " seeds of " << argv[2] << " into " << argv[3] << "\n";
    return 0;
  }
  auto it = registry().find(first);
  if (it == registry().end()) return usage();
  auto run = [&](const std::string& bytes) {
    it->second.target(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  };
  std::size_t n = 0;
  for (const auto& s : it->second.seeds()) {
    run(s);
    ++n;
  }
  for (int i = 2; i < argc; ++i) {
    fs::path p = argv[i];
    if (!fs::exists(p)) {
      std::cerr << "fuzz_replay: " << p << " does not exist\n";
      return 2;
    }
    std::vector<fs::path> files;
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(p);
    }
    for (const auto& f : files) {
      run(slurp(f));
      ++n;
    }
  }
  std::cout << "fuzz_replay " << first << ": " << n << " inputs, no crash\n";
  return 0;
}
