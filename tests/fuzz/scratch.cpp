#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "fuzz.hpp"

namespace iogrid::fuzz {

std::string scratch_file(const std::uint8_t* data, std::size_t size) {
  static const std::string path = [] {
    auto dir = std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
    return (dir / ("iogrid-fuzz-" + std::to_string(::getpid()))).string();
  }();
  static const struct Cleanup {
    ~Cleanup() { std::remove(path.c_str()); }
  } cleanup;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) throw std::runtime_error("fuzz: cannot write " + path);
  return path;
}

}  // namespace iogrid::fuzz
