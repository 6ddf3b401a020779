#include "runtime/head/code_store.hpp"

#include <fstream>
#include <sstream>

#include "runtime/transport/auth.hpp"

namespace iogrid::runtime::head {

CodeStore::CodeStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

bool CodeStore::has(const std::string& hash) const { return !hash.empty() && std::filesystem::exists(dir_ / hash); }

bool CodeStore::put(const std::string& hash, const std::string& bytes, std::vector<std::uint64_t>* waiting) {
  if (hash.empty() || transport::sha256_hex(bytes) != hash) return false;
  std::filesystem::create_directories(dir_);
  auto path = dir_ / hash;
  auto tmp = path;
  tmp += ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::filesystem::rename(tmp, path);
  if (auto it = waiters_.find(hash); it != waiters_.end()) {
    if (waiting) *waiting = std::move(it->second);
    waiters_.erase(it);
  }
  return true;
}

std::optional<std::string> CodeStore::get_or_wait(const std::string& hash, std::uint64_t requester) {
  if (!has(hash)) {
    waiters_[hash].push_back(requester);
    return std::nullopt;
  }
  std::ifstream in(dir_ / hash, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace iogrid::runtime::head
