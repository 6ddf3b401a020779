// CodeStore: the executables drivers upload for their jobs, content-addressed (SHA-256, hex) under a
// directory (the head's --state, else a temporary one). A node asking for code that has not arrived yet
// waits for it: its request is kept and answered when the upload lands.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace iogrid::runtime::head {

class CodeStore {
 public:
  explicit CodeStore(std::filesystem::path dir);
  bool has(const std::string& hash) const;
  // Stores bytes whose SHA-256 is `hash` (written to a .part file, then renamed); false when they do not match.
  // Returns (through `waiting`) the requesters that asked for it before it arrived.
  bool put(const std::string& hash, const std::string& bytes, std::vector<std::uint64_t>* waiting);
  // The bytes, or nullopt after remembering `requester` as waiting for them.
  std::optional<std::string> get_or_wait(const std::string& hash, std::uint64_t requester);
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::vector<std::uint64_t>> waiters_;
};

}  // namespace iogrid::runtime::head
