// Short busy-wait used before parking a thread: waking a parked thread costs ~100 us on these
// machines, far more than a task round trip, so hot paths poll for a few tens of microseconds first.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace iogrid::core {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Polls `ready` for up to `budget` (and never past `deadline`); returns whether it became true.
template <class Pred>
bool spin_for(Pred ready, std::chrono::microseconds budget,
              std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max()) {
  auto stop = std::min(deadline, std::chrono::steady_clock::now() + budget);
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if ((i & 63) == 0) {
      if (std::chrono::steady_clock::now() >= stop) return ready();
      std::this_thread::yield();
    }
  }
}

inline constexpr std::chrono::microseconds kWaiterSpin{60};  // get / wait
inline constexpr std::chrono::microseconds kWorkerSpin{80};  // an idle worker before it parks

}  // namespace iogrid::core
