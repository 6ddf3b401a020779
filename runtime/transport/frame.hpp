// Frames: a little-endian u32 length, then that many bytes of one Cap'n Proto flat message (an Envelope).
// FrameDecoder accumulates bytes from a stream and yields whole frames; a frame larger than the limit, or
// one that is not a whole number of 8-byte words, is a protocol error (FrameError) and the connection is
// closed. Decoding uses Cap'n Proto's bounds checks and a traversal limit proportional to the frame size.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "wire.capnp.h"

namespace iogrid::runtime::transport {

struct FrameError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr std::uint32_t kUnauthenticatedFrameLimit = 4 * 1024;
inline constexpr std::uint32_t kDefaultFrameLimit = 1u << 30;  // 1 GiB: bulk values travel in frames for now

// Serialises a built message into one frame (length prefix included).
std::string encode_frame(capnp::MessageBuilder& msg);

// One received frame, word-aligned, readable as an Envelope.
class Frame {
 public:
  Frame(std::unique_ptr<capnp::word[]> words, std::size_t count);
  proto::Envelope::Reader envelope();  // throws FrameError on malformed content
  std::size_t bytes() const { return count_ * sizeof(capnp::word); }

 private:
  std::unique_ptr<capnp::word[]> words_;
  std::size_t count_ = 0;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader_;
};

class FrameDecoder {
 public:
  void set_limit(std::uint32_t limit) { limit_ = limit; }
  void feed(const char* data, std::size_t n);
  // The next whole frame, or nullptr when more bytes are needed. Throws FrameError on a bad length.
  std::unique_ptr<Frame> next();
  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  static constexpr std::size_t kKeptCapacity = 1u << 20;  // more than this is released once the buffer empties
  std::uint32_t limit_ = kUnauthenticatedFrameLimit;
  std::vector<char> buf_;
  std::size_t pos_ = 0;
};

}  // namespace iogrid::runtime::transport
