// iogrid::Bytes: an immutable, shared byte buffer.
// Passing Bytes to `put` copies the bytes once into the object store; `get<Bytes>` of such an
// object returns a view that shares the stored memory (zero copy inside a process).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "iogrid/core/buffer.hpp"

namespace iogrid {

class Bytes {
 public:
  Bytes() = default;
  // Copies `n` bytes from `p`.
  Bytes(const void* p, std::size_t n) {
    auto buf = core::make_buffer(n);
    if (n) std::memcpy(buf->data(), p, n);
    data_ = buf->data();
    size_ = n;
    owner_ = std::move(buf);
  }
  explicit Bytes(std::string_view s) : Bytes(s.data(), s.size()) {}
  explicit Bytes(const std::vector<std::uint8_t>& v) : Bytes(v.data(), v.size()) {}
  // A view into memory kept alive by `owner` (used by deserialisation; no copy).
  Bytes(std::shared_ptr<const void> owner, const std::uint8_t* p, std::size_t n)
      : owner_(std::move(owner)), data_(p), size_(n) {}

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const std::uint8_t> span() const { return {data_, size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  std::uint8_t operator[](std::size_t i) const { return data_[i]; }
  friend bool operator==(const Bytes& a, const Bytes& b) {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }

 private:
  std::shared_ptr<const void> owner_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace iogrid
