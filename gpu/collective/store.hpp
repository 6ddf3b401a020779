// Store: the rendezvous a collective group's members meet through (c10d's Store): each member publishes its
// address under a key and waits for the others'. In iogrid the store is the head's key-value store (the SDK
// adapts it); MemoryStore serves members that share one process (tests, one-machine runs).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace iogrid::gpu::collective {

// Every failure of a collective (rendezvous timeout, a member that died, bad arguments) is a CollectiveError
// whose message names the group, the operation and the cause.
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  virtual std::optional<std::string> get(const std::string& key) = 0;
  // Waits until every key is set; throws CollectiveError naming the missing keys after `timeout`. The
  // default polls get() with a growing pause (1 ms up to 50 ms).
  virtual void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
};

class MemoryStore final : public Store {
 public:
  void set(const std::string& key, const std::string& value) override;
  std::optional<std::string> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::map<std::string, std::string> kv_;
};

}  // namespace iogrid::gpu::collective
