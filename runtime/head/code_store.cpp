#include "runtime/head/code_store.hpp"

#include <fstream>
#include <sstream>

#include "runtime/transport/auth.hpp"

namespace iogrid::runtime::head {

CodeStore::CodeStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

bool CodeStore::has(const std::string& hash) const { return !hash.empty() && std::filesystem::exists(dir_ / hash); }

bool CodeStore::write(const std::filesystem::path& dir, const std::string& hash, const std::string& bytes) {
  if (hash.empty() || hash.find('/') != std::string::npos || transport::sha256_hex(bytes) != hash) return false;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  auto path = dir / hash;
  auto tmp = path;
  tmp += ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return false;
  }
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

std::vector<std::uint64_t> CodeStore::stored(const std::string& hash) {
  std::vector<std::uint64_t> waiting;
  if (auto it = waiters_.find(hash); it != waiters_.end()) {
    waiting = std::move(it->second);
    waiters_.erase(it);
  }
  return waiting;
}

std::optional<std::string> CodeStore::read(const std::filesystem::path& dir, const std::string& hash) {
  if (hash.empty() || hash.find('/') != std::string::npos) return std::nullopt;
  std::ifstream in(dir / hash, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool CodeStore::put(const std::string& hash, const std::string& bytes, std::vector<std::uint64_t>* waiting) {
  if (!write(dir_, hash, bytes)) return false;
  auto w = stored(hash);
  if (waiting) *waiting = std::move(w);
  return true;
}

std::optional<std::string> CodeStore::get_or_wait(const std::string& hash, std::uint64_t requester) {
  if (!has(hash)) {
    wait_for(hash, requester);
    return std::nullopt;
  }
  return read(dir_, hash);
}

}  // namespace iogrid::runtime::head
