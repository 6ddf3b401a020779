#include <catch2/catch.hpp>
#include <thread>

#include "cluster_fixture.hpp"

using namespace std::chrono_literals;

namespace {
std::vector<std::uint8_t> make_block(int mib, int fill) {
  return std::vector<std::uint8_t>(std::size_t(mib) << 20, std::uint8_t(fill));
}
std::int64_t checksum(const iogrid::Bytes& b) {
  std::int64_t s = 0;
  for (std::size_t i = 0; i < b.size(); i += 4096) s += b[i];
  return s;
}
int half(int x) { return x / 2; }
IOGRID_REMOTE(make_block);
IOGRID_REMOTE(checksum);
IOGRID_REMOTE(half);

std::int64_t store_used() {
  std::int64_t used = 0;
  for (const auto& n : iogrid::nodes()) used += n.object_store_used_bytes;
  return used;
}
}  // namespace

TEST_CASE("put and get round-trip values, Bytes come back without a copy", "[objects]") {
  Cluster c;
  auto r = iogrid::put(std::vector<int>{1, 2, 3});
  REQUIRE(iogrid::get(r) == std::vector<int>{1, 2, 3});
  iogrid::Bytes big(std::string(1 << 20, 'x'));
  auto br = iogrid::put(big);
  auto a = iogrid::get(br);
  auto b = iogrid::get(br);
  REQUIRE(a.size() == (1u << 20));
  REQUIRE(a.data() == b.data());  // both views share the stored buffer
  REQUIRE(iogrid::get(iogrid::task(checksum).remote(br)) == 256 * 'x');
}

TEST_CASE("memory returns to its baseline once a graph's refs are dropped", "[objects][refcount]") {
  Cluster c;
  auto base_objects = iogrid::live_objects();
  REQUIRE(store_used() == 0);
  {
    std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> blocks;
    for (int i = 0; i < 8; ++i) blocks.push_back(iogrid::task(make_block).remote(2, i));
    std::vector<iogrid::ObjectRef<int>> halves;
    for (int i = 0; i < 100; ++i) halves.push_back(iogrid::task(half).remote(i));
    for (auto& b : blocks) REQUIRE(iogrid::get(b).size() == (2u << 20));
    REQUIRE(iogrid::get(halves).back() == 49);
    REQUIRE(store_used() >= 16 << 20);
    REQUIRE(iogrid::live_objects() >= base_objects + 108);
  }
  // The worker that produced the last block may still be finishing that task when the driver has its result
  // (seen once in 20 runs on a loaded machine: one block still counted): allow it a moment, not more.
  for (int i = 0; i < 200 && store_used() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(store_used() == 0);
  REQUIRE(iogrid::live_objects() == base_objects);
}

TEST_CASE("a store over capacity spills and still returns every object", "[objects][spill]") {
  iogrid::InitOptions o;
  o.nodes.push_back({.num_cpus = 2, .object_store_bytes = 8 << 20});
  Cluster c(o);
  std::vector<iogrid::ObjectRef<std::vector<std::uint8_t>>> blocks;
  for (int i = 0; i < 6; ++i) blocks.push_back(iogrid::task(make_block).remote(2, i + 1));
  for (int i = 0; i < 6; ++i) {
    auto v = iogrid::get(blocks[i]);
    REQUIRE(v.size() == (2u << 20));
    REQUIRE(v[12345] == i + 1);
  }
  REQUIRE(iogrid::nodes()[0].spilled_bytes > 0);
  REQUIRE(iogrid::nodes()[0].object_store_used_bytes <= 8 << 20);
}

TEST_CASE("a put larger than the store fails with ObjectStoreFullError", "[objects][spill]") {
  iogrid::InitOptions o;
  o.nodes.push_back({.num_cpus = 1, .object_store_bytes = 1 << 20});
  Cluster c(o);
  REQUIRE_THROWS_AS(iogrid::put(make_block(2, 0)), iogrid::ObjectStoreFullError);
  auto r = iogrid::task(make_block).remote(2, 0);
  REQUIRE_THROWS_WITH(iogrid::get(r), Catch::Contains("does not fit"));
}
