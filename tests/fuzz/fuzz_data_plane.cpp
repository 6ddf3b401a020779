// The data plane: a request as a server reads it, and a GET reply (status, size, chunks with their CRC-32s) as
// a client reads it from a server that may lie about the size or damage the bytes.
#include <algorithm>
#include <cstring>

#include "fuzz.hpp"
#include "iogrid/core/errors.hpp"
#include "runtime/transport/data_wire.hpp"

namespace {

using namespace iogrid::runtime::transport;

std::string reply(const std::string& object, bool found) {
  std::string out(1, found ? '\0' : '\1');
  std::uint64_t n = found ? object.size() : 0;
  for (int i = 0; i < 8; ++i) out.push_back(char(n >> (8 * i)));
  if (!found) return out;
  for (std::size_t off = 0; off < object.size(); off += data_wire::kChunk) {
    auto len = std::min(data_wire::kChunk, object.size() - off);
    out.append(object, off, len);
    auto c = data_wire::crc(reinterpret_cast<const std::uint8_t*>(object.data() + off), len);
    for (int i = 0; i < 4; ++i) out.push_back(char(c >> (8 * i)));
  }
  return out;
}

std::vector<std::string> seeds() {
  std::string get(9, '\0'), del(9, '\0');
  get[0] = 1;
  get[1] = 42;
  del[0] = 2;
  // byte 0: what is fuzzed (even: a reply, odd: a request); bytes 1-2: the announced size less one
  return {std::string("\x01\x00\x00", 3) + get + del, std::string("\x00\x04\x00", 3) + reply("hello", true),
          std::string("\x00\x00\x00", 3) + reply("", false), std::string("\x00\x2b\x01", 3) + reply(std::string(300, 'x'), true)};
}

}  // namespace

IOGRID_FUZZ_TARGET(data_plane, seeds) {
  if (size < 3) return 0;
  const bool request = data[0] & 1;
  const std::uint64_t expected = 1 + (std::uint64_t(data[1]) | std::uint64_t(data[2]) << 8);
  data += 3;
  size -= 3;
  std::size_t pos = 0;
  auto take = [&](void* p, std::size_t n) {
    if (size - pos < n) throw iogrid::core::Error("the stream ended");  // as a closed socket does
    std::memcpy(p, data + pos, n);
    pos += n;
  };
  try {
    if (request) {
      for (;;) {
        std::uint8_t bytes[9];
        take(bytes, sizeof bytes);
        auto r = data_wire::parse_request(bytes);
        std::uint8_t again[9];
        data_wire::encode_request(again, r);
        if (std::memcmp(again, bytes, 9) != 0) __builtin_trap();  // a request reads back as it was sent
      }
    } else {
      // The size the object's location announced bounds the allocation: the client refuses any other.
      auto out = data_wire::read_reply(
          [&](void* a, std::size_t na, void* b, std::size_t nb) {
            take(a, na);
            if (b) take(b, nb);
          },
          expected, "fuzzed object");
      if (out && out->size() != expected) __builtin_trap();
    }
  } catch (const iogrid::core::Error&) {
  }
  return 0;
}
