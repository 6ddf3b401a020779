// A job's executable travels in chunks: whoever needs it (the head from a driver, a node from the head) asks for
// the chunk at an offset, a few at a time, and the holder answers each from its file. Large binaries (an ASan
// build, a program linked with CUDA libraries: hundreds of MB) so never sit in memory whole and never hold up the
// other messages of a connection for more than a few chunks.
// Rules: chunks are asked for in order, at most kCodeWindow in flight; one connection delivers them in order; a
// chunk at an unexpected offset or of the wrong size, a size that changes, or a hash that does not match fails
// the download and its DIR/HASH.part is removed; a complete one is renamed to DIR/HASH only after its hash matched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/transport/auth.hpp"
#include "runtime/transport/endpoint.hpp"

namespace iogrid::runtime::cluster {

inline constexpr std::uint64_t kCodeChunkBytes = 1u << 20;
inline constexpr int kCodeWindow = 4;

// The chunk of `file` at `offset` (kCodeChunkBytes, or what is left at the end) and the file's size through
// `total`; nullopt when the file cannot be read or `offset` is not inside it.
std::optional<std::string> read_code_chunk(const std::filesystem::path& file, std::uint64_t offset, std::uint64_t* total);

class CodeDownload;

// The wire side, the same for every holder and receiver: the receiver asks `holder` for the chunks `d` wants
// now (CodeRequest); a holder answers one request with the chunk of `file` (Code; `file` empty or unreadable:
// total 0, "no such code").
void ask_code_chunks(transport::Endpoint& ep, transport::ConnId holder, CodeDownload& d);
void send_code_chunk(transport::Endpoint& ep, transport::ConnId to, const std::string& hash, std::uint64_t offset,
                     const std::filesystem::path& file);

// The receiving side of one executable.
class CodeDownload {
 public:
  // `total` 0: unknown until the first chunk says it (only one request is in flight until then).
  CodeDownload(std::filesystem::path dir, std::string hash, std::uint64_t total = 0);
  ~CodeDownload();  // an unfinished .part file is removed
  CodeDownload(const CodeDownload&) = delete;
  CodeDownload& operator=(const CodeDownload&) = delete;

  enum class Step { more, done, failed };

  // The offsets to ask for now, keeping kCodeWindow chunks in flight.
  std::vector<std::uint64_t> next_requests();
  // One chunk, as the holder sent it (total 0: the holder has no such code).
  Step add(std::uint64_t offset, std::uint64_t total, std::string_view bytes);
  // The requests in flight were lost with a connection: next_requests() asks again from what was written.
  void restart();

  const std::string& hash() const { return hash_; }
  const std::string& error() const { return error_; }
  std::uint64_t received() const { return written_; }
  std::uint64_t total() const { return total_; }
  std::filesystem::path path() const { return dir_ / hash_; }

 private:
  Step fail(std::string why);

  std::filesystem::path dir_;
  std::string hash_;
  std::uint64_t total_ = 0;
  std::uint64_t written_ = 0;
  std::uint64_t requested_ = 0;  // the next offset to ask for
  int in_flight_ = 0;
  bool over_ = false;
  std::ofstream out_;
  transport::Sha256 sha_;
  std::string error_;
};

}  // namespace iogrid::runtime::cluster
