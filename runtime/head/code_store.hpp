// CodeStore: the executables drivers upload for their jobs, content-addressed (SHA-256, hex) under a
// directory (the head's --state, else a temporary one). The file work (chunks in, chunks out) is the shell's
// (cluster/code_transfer.hpp); this keeps what is stored and who asked for code that has not arrived yet: a
// node's request for a chunk is kept and answered when the upload lands.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace iogrid::runtime::head {

class CodeStore {
 public:
  explicit CodeStore(std::filesystem::path dir);
  bool has(const std::string& hash) const;
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path path(const std::string& hash) const { return dir_ / hash; }

  // A requester's ask for the chunk at `offset` of code that is not stored yet.
  void wait_for(const std::string& hash, std::uint64_t requester, std::uint64_t offset);
  // The asks kept for `hash`, in the order they came (handed back once: when it is stored, or given up).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> take_waiting(const std::string& hash);

 private:
  std::filesystem::path dir_;
  std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>> waiters_;
};

}  // namespace iogrid::runtime::head
