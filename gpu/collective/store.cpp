#include "gpu/collective/store.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace iogrid::gpu::collective {

namespace {
std::string missing(const std::vector<std::string>& keys, const std::function<bool(const std::string&)>& have) {
  std::string out;
  for (const auto& k : keys)
    if (!have(k)) out += (out.empty() ? "" : ", ") + k;
  return out;
}
}  // namespace

void Store::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    bool all = true;
    for (const auto& k : keys)
      if (!get(k)) {
        all = false;
        break;
      }
    if (all) return;
    if (std::chrono::steady_clock::now() >= deadline)
      throw CollectiveError("rendezvous timed out after " + std::to_string(timeout.count()) + " ms waiting for " +
                            missing(keys, [&](const std::string& k) { return get(k).has_value(); }));
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

void MemoryStore::set(const std::string& key, const std::string& value) {
  {
    std::lock_guard<std::mutex> g(m_);
    kv_[key] = value;
  }
  cv_.notify_all();
}

std::optional<std::string> MemoryStore::get(const std::string& key) {
  std::lock_guard<std::mutex> g(m_);
  auto it = kv_.find(key);
  if (it == kv_.end()) return std::nullopt;
  return it->second;
}

void MemoryStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> g(m_);
  auto have = [&](const std::string& k) { return kv_.count(k) > 0; };
  bool ok = cv_.wait_for(g, timeout, [&] { return std::all_of(keys.begin(), keys.end(), have); });
  if (!ok)
    throw CollectiveError("rendezvous timed out after " + std::to_string(timeout.count()) + " ms waiting for " +
                          missing(keys, have));
}

}  // namespace iogrid::gpu::collective
