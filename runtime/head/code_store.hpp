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

  // The same in two steps, for a shell that does the file work off its network thread: write() checks and
  // writes (any thread; touches no state), stored() then hands back who was waiting; read() reads the file.
  static bool write(const std::filesystem::path& dir, const std::string& hash, const std::string& bytes);
  std::vector<std::uint64_t> stored(const std::string& hash);
  void wait_for(const std::string& hash, std::uint64_t requester) { waiters_[hash].push_back(requester); }
  static std::optional<std::string> read(const std::filesystem::path& dir, const std::string& hash);

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::vector<std::uint64_t>> waiters_;
};

}  // namespace iogrid::runtime::head
