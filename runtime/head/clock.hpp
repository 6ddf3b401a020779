// HeadClock: the time the head core reads, injected so tests drive it by hand (tests/runtime/head/fake_clock.hpp).
// `now` orders events (heartbeats, lease durations, expiries); `unix_ms` stamps what people read (job start
// and end, reservation creation) and what survives a restart.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace iogrid::runtime::head {

using Clock = std::chrono::steady_clock;

struct HeadClock {
  std::function<Clock::time_point()> now = [] { return Clock::now(); };
  std::function<std::int64_t()> unix_ms = [] {
    return std::int64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count());
  };
};

}  // namespace iogrid::runtime::head
