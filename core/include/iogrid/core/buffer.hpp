// Buffer: an immutable run of bytes holding one serialised object.
// Invariants: the bytes are written once, right after allocation, and never change afterwards,
// so a BufferPtr can be shared between threads (and handed out by `get`) without copying.
// Large buffers come from a recycling pool so that repeated puts of big objects reuse memory
// that is already mapped instead of faulting in fresh pages every time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace iogrid::core {

class Buffer {
 public:
  static constexpr std::size_t kInlineCapacity = 48;

  explicit Buffer(std::size_t size);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::uint8_t* data_;
  std::size_t size_;
  std::uint8_t inline_[kInlineCapacity];
};

using BufferPtr = std::shared_ptr<const Buffer>;
using MutableBufferPtr = std::shared_ptr<Buffer>;

inline MutableBufferPtr make_buffer(std::size_t size) { return std::make_shared<Buffer>(size); }

// Bytes currently cached by the large-buffer pool (for tests and metrics).
std::size_t buffer_pool_cached_bytes();
// Frees the pool's buffers idle for at least `idle_for` (and malloc's free pages with them); returns the bytes
// freed. The runtime's processes call it on their endpoint's tick with kBufferPoolIdle.
std::size_t trim_buffer_pool(std::chrono::milliseconds idle_for);
inline constexpr std::chrono::milliseconds kBufferPoolIdle{5000};

}  // namespace iogrid::core
