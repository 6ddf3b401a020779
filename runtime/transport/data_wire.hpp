// The data plane's byte layouts, apart from its sockets, so that they are read in one place and can be fuzzed
// (tests/fuzz/fuzz_data_plane.cpp). See data_plane.hpp for the protocol.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "iogrid/core/buffer.hpp"

namespace iogrid::runtime::transport::data_wire {

inline constexpr std::size_t kChunk = 4u << 20;                     // object bytes between two CRC-32s
inline constexpr std::uint64_t kMaxObjectBytes = 1ull << 40;        // a reply announcing more is refused
inline constexpr std::uint8_t kGet = 1, kDelete = 2;

struct Request {
  std::uint8_t op = 0;  // kGet or kDelete
  std::uint64_t key = 0;
};
// [u8 op][u64 key]; throws iogrid::Error for an unknown op.
Request parse_request(const std::uint8_t (&bytes)[9]);
void encode_request(std::uint8_t (&bytes)[9], const Request& r);

std::uint32_t crc(const std::uint8_t* p, std::size_t n);

// Reads `na` bytes into a, then `nb` into b (one scatter read on a plain socket); throws when the stream ends.
using Read2 = std::function<void(void* a, std::size_t na, void* b, std::size_t nb)>;

// Reads one GET reply: [u8 status][u64 size], then the object in chunks each followed by its CRC-32.
// `expected_size` is the size the object's location announced (0: unknown, any size up to kMaxObjectBytes).
// Returns nullptr when the server has no such object; throws iogrid::Error (naming `what`) for a size that is
// not the announced one or too large, and for a chunk that fails its checksum.
core::BufferPtr read_reply(const Read2& read, std::uint64_t expected_size, const std::string& what);

}  // namespace iogrid::runtime::transport::data_wire
