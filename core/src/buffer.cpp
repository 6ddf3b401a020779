#include "iogrid/core/buffer.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace iogrid::core {

namespace {

// Large buffers are recycled: freeing one keeps its (already faulted-in) pages for the next buffer of
// the same size class, up to a cap. Size classes are powers of two from 1 MiB.
constexpr std::size_t kPoolMin = 1u << 20;
constexpr std::size_t kPoolCapBytes = std::size_t(1) << 30;

std::size_t size_class(std::size_t n) {
  std::size_t c = kPoolMin;
  while (c < n) c <<= 1;
  return c;
}

struct Pool {
  std::mutex m;
  std::multimap<std::size_t, void*> free;
  std::size_t cached = 0;

  void* take(std::size_t cls) {
    {
      std::lock_guard<std::mutex> g(m);
      auto it = free.find(cls);
      if (it != free.end()) {
        void* p = it->second;
        free.erase(it);
        cached -= cls;
        return p;
      }
    }
    void* p = std::aligned_alloc(64, cls);
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(p, cls, MADV_HUGEPAGE);
#endif
    return p;
  }
  void give(void* p, std::size_t cls) {
    {
      std::lock_guard<std::mutex> g(m);
      if (cached + cls <= kPoolCapBytes) {
        free.emplace(cls, p);
        cached += cls;
        return;
      }
    }
    std::free(p);
  }
  ~Pool() {
    for (auto& [c, p] : free) std::free(p);
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: buffers may be freed during static destruction
  return *p;
}

}  // namespace

Buffer::Buffer(std::size_t size) : size_(size) {
  if (size <= kInlineCapacity) data_ = inline_;
  else if (size < kPoolMin) data_ = static_cast<std::uint8_t*>(::operator new(size));
  else data_ = static_cast<std::uint8_t*>(pool().take(size_class(size)));
}

Buffer::~Buffer() {
  if (size_ <= kInlineCapacity) return;
  if (size_ < kPoolMin) ::operator delete(data_);
  else pool().give(data_, size_class(size_));
}

std::size_t buffer_pool_cached_bytes() {
  std::lock_guard<std::mutex> g(pool().m);
  return pool().cached;
}

}  // namespace iogrid::core
