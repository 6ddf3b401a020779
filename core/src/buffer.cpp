#include "iogrid/core/buffer.hpp"

#include <sys/mman.h>

#include <malloc.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace iogrid::core {

namespace {

// Large buffers are recycled: freeing one keeps its (already faulted-in) pages for the next buffer of
// the same size class, up to a cap. Size classes are powers of two from 1 MiB. A buffer idle in the pool
// longer than trim_buffer_pool's age goes back to the system (the runtime's processes trim on their tick),
// so a burst of large objects leaves no lasting footprint.
constexpr std::size_t kPoolMin = 1u << 20;
constexpr std::size_t kPoolCapBytes = std::size_t(1) << 30;

std::size_t size_class(std::size_t n) {
  std::size_t c = kPoolMin;
  while (c < n) c <<= 1;
  return c;
}

using Clock = std::chrono::steady_clock;

struct Pool {
  struct Idle {
    void* p;
    Clock::time_point since;
  };
  std::mutex m;
  std::multimap<std::size_t, Idle> free;
  std::size_t cached = 0;

  void* take(std::size_t cls) {
    {
      std::lock_guard<std::mutex> g(m);
      // The most recently given of the class: its pages are the likeliest to be warm.
      auto [lo, hi] = free.equal_range(cls);
      if (lo != hi) {
        auto it = std::prev(hi);
        void* p = it->second.p;
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
        free.emplace(cls, Idle{p, Clock::now()});
        cached += cls;
        return;
      }
    }
    std::free(p);
  }
  std::size_t trim(std::chrono::milliseconds idle_for) {
    std::vector<void*> drop;
    std::size_t bytes = 0;
    {
      std::lock_guard<std::mutex> g(m);
      if (free.empty()) return 0;
      const auto cutoff = Clock::now() - idle_for;
      for (auto it = free.begin(); it != free.end();) {
        if (it->second.since > cutoff) {
          ++it;
          continue;
        }
        drop.push_back(it->second.p);
        bytes += it->first;
        cached -= it->first;
        it = free.erase(it);
      }
    }
    for (void* p : drop) std::free(p);
#ifdef __GLIBC__
    if (bytes > 0) malloc_trim(0);  // freed chunks inside malloc's heaps go back to the system too
#endif
    return bytes;
  }
  ~Pool() {
    for (auto& [c, idle] : free) std::free(idle.p);
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

std::size_t trim_buffer_pool(std::chrono::milliseconds idle_for) { return pool().trim(idle_for); }

std::size_t buffer_pool_cached_bytes() {
  std::lock_guard<std::mutex> g(pool().m);
  return pool().cached;
}

}  // namespace iogrid::core
