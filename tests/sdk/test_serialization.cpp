#include <catch2/catch.hpp>
#include <iogrid/iogrid.hpp>

using namespace iogrid;

namespace {
struct Point {
  double x = 0, y = 0;
  std::string label;
  std::vector<int> tags;
  IOGRID_SERIALIZE(x, y, label, tags)
};
enum class Color : std::uint8_t { red, green };

template <class T>
T roundtrip(const T& v) {
  return deserialize<T>(serialize(v));
}
}  // namespace

TEST_CASE("values round-trip through serialisation", "[serialization]") {
  REQUIRE(roundtrip(42) == 42);
  REQUIRE(roundtrip(-1.5) == -1.5);
  REQUIRE(roundtrip(true));
  REQUIRE(roundtrip(Color::green) == Color::green);
  REQUIRE(roundtrip(std::string("héllo")) == "héllo");
  REQUIRE(roundtrip(std::vector<double>{1, 2, 3}) == std::vector<double>{1, 2, 3});
  REQUIRE(roundtrip(std::vector<std::string>{"a", "", "c"}) == std::vector<std::string>{"a", "", "c"});
  REQUIRE(roundtrip(std::vector<bool>{true, false}) == std::vector<bool>{true, false});
  std::map<std::string, std::vector<int>> m{{"a", {1}}, {"b", {}}};
  REQUIRE(roundtrip(m) == m);
  std::unordered_map<int, std::string> um{{1, "x"}};
  REQUIRE(roundtrip(um) == um);
  auto t = std::make_tuple(1, std::string("s"), std::optional<int>(), std::optional<double>(2.5));
  REQUIRE(roundtrip(t) == t);
  REQUIRE(roundtrip(std::pair<int, float>(1, 2.f)) == std::pair<int, float>(1, 2.f));
  REQUIRE(roundtrip(std::array<int, 3>{1, 2, 3}) == std::array<int, 3>{1, 2, 3});
  Point p{1, 2, "p", {7, 8}};
  auto q = roundtrip(p);
  REQUIRE(q.x == 1);
  REQUIRE(q.label == "p");
  REQUIRE(q.tags == std::vector<int>{7, 8});
}

TEST_CASE("Bytes read from a buffer share it instead of copying", "[serialization]") {
  Bytes b(std::string_view("payload"));
  auto buf = serialize(b);
  auto v = deserialize<Bytes>(buf);
  REQUIRE(v.view() == "payload");
  REQUIRE(v.data() >= buf->data());
  REQUIRE(v.data() < buf->data() + buf->size());
}

TEST_CASE("corrupt or mistyped bytes raise SerializationError", "[serialization]") {
  auto buf = serialize(std::vector<int>{1, 2, 3});
  REQUIRE_THROWS_AS(deserialize<std::vector<double>>(buf), SerializationError);  // length too large
  REQUIRE_THROWS_AS(deserialize<int>(buf), SerializationError);                  // trailing bytes
  auto huge = core::make_buffer(8);
  std::uint64_t n = ~0ull;
  std::memcpy(huge->data(), &n, 8);
  REQUIRE_THROWS_WITH(deserialize<std::string>(huge), Catch::Contains("corrupt value"));
}
