#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "iogrid/errors.hpp"
#include "runtime/object_store.hpp"

using namespace iogrid;

namespace {
core::BufferPtr filled(std::size_t n, std::uint8_t v) {
  auto b = core::make_buffer(n);
  std::memset(b->data(), v, n);
  return b;
}
std::filesystem::path temp_dir(const char* name) {
  return std::filesystem::temp_directory_path() / (std::string("iogrid-test-") + name + "-" + std::to_string(getpid()));
}
}  // namespace

TEST_CASE("over capacity, the least recently used objects spill to disk and come back intact", "[store]") {
  auto dir = temp_dir("spill");
  {
    runtime::ObjectStore s("n0", 3 << 20, dir);
    s.put(1, filled(1 << 20, 1));
    s.put(2, filled(1 << 20, 2));
    s.put(3, filled(1 << 20, 3));
    (void)s.fetch(1);               // 1 is now more recent than 2
    s.put(4, filled(1 << 20, 4));   // must spill 2
    auto st = s.stats();
    REQUIRE(st.used_bytes <= st.capacity_bytes);
    REQUIRE(st.spilled_bytes == (1 << 20));
    REQUIRE(st.spills == 1);
    auto b = s.fetch(2);            // restored (spilling another)
    REQUIRE(b->size() == (1u << 20));
    REQUIRE(b->data()[0] == 2);
    REQUIRE(b->data()[(1 << 20) - 1] == 2);
    REQUIRE(s.stats().restores == 1);
    s.erase(1);
    s.erase(2);
    s.erase(3);
    s.erase(4);
    REQUIRE(s.stats().used_bytes == 0);
    REQUIRE(s.stats().spilled_bytes == 0);
  }
  REQUIRE_FALSE(std::filesystem::exists(dir));
}

TEST_CASE("an object larger than the store fails with a clear error", "[store]") {
  runtime::ObjectStore s("n0", 1 << 20, temp_dir("big"));
  REQUIRE_THROWS_WITH(s.put(1, filled(2 << 20, 0)), Catch::Contains("does not fit") && Catch::Contains("capacity 1 MiB"));
}

TEST_CASE("objects held by readers are never spilled, a full store says so", "[store]") {
  runtime::ObjectStore s("n0", 2 << 20, temp_dir("pinned"));
  s.put(1, filled(1 << 20, 1));
  s.put(2, filled(1 << 20, 2));
  auto r1 = s.fetch(1);
  auto r2 = s.fetch(2);
  REQUIRE_THROWS_AS(s.put(3, filled(1 << 20, 3)), ObjectStoreFullError);
  r2.reset();
  REQUIRE_NOTHROW(s.put(3, filled(1 << 20, 3)));
  REQUIRE(r1->data()[0] == 1);
}

TEST_CASE("large buffers freed after a burst go back to the system once idle", "[store]") {
  using namespace std::chrono_literals;
  iogrid::core::trim_buffer_pool(0ms);  // whatever earlier tests left
  {
    std::vector<iogrid::core::MutableBufferPtr> burst;
    for (int i = 0; i < 4; ++i) burst.push_back(iogrid::core::make_buffer(8u << 20));
  }
  CHECK(iogrid::core::buffer_pool_cached_bytes() >= 4 * (8u << 20));  // kept for the next burst
  auto again = iogrid::core::make_buffer(8u << 20);                  // reused, not newly mapped
  CHECK(iogrid::core::buffer_pool_cached_bytes() >= 3 * (8u << 20));
  CHECK(iogrid::core::trim_buffer_pool(1h) == 0);  // nothing idle that long
  std::this_thread::sleep_for(50ms);
  CHECK(iogrid::core::trim_buffer_pool(20ms) >= 3 * (8u << 20));
  CHECK(iogrid::core::buffer_pool_cached_bytes() == 0);
}
