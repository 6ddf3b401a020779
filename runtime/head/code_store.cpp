#include "runtime/head/code_store.hpp"

namespace iogrid::runtime::head {

CodeStore::CodeStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

bool CodeStore::has(const std::string& hash) const {
  if (hash.empty() || hash.find('/') != std::string::npos || hash.find("..") != std::string::npos) return false;
  std::error_code ec;
  return std::filesystem::is_regular_file(dir_ / hash, ec);
}

void CodeStore::wait_for(const std::string& hash, std::uint64_t requester, std::uint64_t offset) {
  waiters_[hash].emplace_back(requester, offset);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> CodeStore::take_waiting(const std::string& hash) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  if (auto it = waiters_.find(hash); it != waiters_.end()) {
    out = std::move(it->second);
    waiters_.erase(it);
  }
  return out;
}

}  // namespace iogrid::runtime::head
