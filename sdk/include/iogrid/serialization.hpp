// How task arguments and results become bytes.
//
// Supported out of the box: arithmetic types and enums, std::string, std::vector, std::array, std::map,
// std::unordered_map, std::set, std::pair, std::tuple, std::optional, iogrid::Bytes, iogrid::ObjectRef<T>.
//
// User structs opt in with one line naming their members:
//
//     struct Point { double x, y; std::string label; IOGRID_SERIALIZE(x, y, label) };
//
// Any other type is a compile error that names the type ("iogrid: type is not serialisable ...").
// Format: little-endian, no padding, lengths as u64; vectors of trivially copyable elements are one memcpy.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "iogrid/bytes.hpp"
#include "iogrid/core/buffer.hpp"
#include "iogrid/core/object_entry.hpp"
#include "iogrid/errors.hpp"

#define IOGRID_SERIALIZE(...)                            \
  template <class IogridF>                               \
  void iogrid_fields(IogridF&& iogrid_f) {               \
    iogrid_f(__VA_ARGS__);                               \
  }                                                      \
  template <class IogridF>                               \
  void iogrid_fields(IogridF&& iogrid_f) const {         \
    iogrid_f(__VA_ARGS__);                               \
  }

namespace iogrid {

// Writes values; first in a measuring pass (no output, only the size), then for real into an exact-size buffer.
class Writer {
 public:
  explicit Writer(std::uint8_t* out) : out_(out) {}
  Writer() = default;  // measuring
  bool measuring() const { return out_ == nullptr; }
  void write(const void* p, std::size_t n) {
    if (out_ && n) std::memcpy(out_ + pos_, p, n);
    pos_ += n;
  }
  template <class T>
  void write_pod(const T& v) {
    write(&v, sizeof(T));
  }
  std::size_t size() const { return pos_; }
  // ObjectRefs written into this value: kept alive as long as the value.
  std::vector<std::shared_ptr<void>>* contained = nullptr;

 private:
  std::uint8_t* out_ = nullptr;
  std::size_t pos_ = 0;
};

class Reader {
 public:
  Reader(const std::uint8_t* p, std::size_t n, std::shared_ptr<const void> owner = nullptr)
      : p_(p), end_(p + n), owner_(std::move(owner)) {}
  void read(void* out, std::size_t n) {
    need(n);
    if (n) std::memcpy(out, p_, n);
    p_ += n;
  }
  template <class T>
  T read_pod() {
    T v;
    read(&v, sizeof(T));
    return v;
  }
  const std::uint8_t* take(std::size_t n) {
    need(n);
    auto q = p_;
    p_ += n;
    return q;
  }
  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
  const std::shared_ptr<const void>& owner() const { return owner_; }
  std::uint64_t read_length(std::size_t min_elem_size) {
    auto n = read_pod<std::uint64_t>();
    if (min_elem_size && n > remaining() / min_elem_size)
      throw SerializationError("iogrid: corrupt value: length " + std::to_string(n) + " exceeds the " +
                               std::to_string(remaining()) + " bytes left");
    return n;
  }

 private:
  void need(std::size_t n) {
    if (n > remaining())
      throw SerializationError("iogrid: corrupt value: wanted " + std::to_string(n) + " bytes, " +
                               std::to_string(remaining()) + " left");
  }
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  std::shared_ptr<const void> owner_;
};

namespace detail {
template <class>
inline constexpr bool dependent_false = false;

template <class T, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(std::declval<T&>().iogrid_fields([](auto&...) {}))>> : std::true_type {};
}  // namespace detail

// The codec of T. Specialise it for types you cannot add IOGRID_SERIALIZE to.
template <class T, class Enable = void>
struct Codec {
  static_assert(detail::dependent_false<T>,
                "iogrid: type is not serialisable (see the type in 'Codec<TYPE>' above). "
                "Add IOGRID_SERIALIZE(member, ...) to the struct, or specialise iogrid::Codec<TYPE>.");
  static void write(Writer&, const T&) {}
  static T read(Reader&);
};

template <class T, class = void>
struct is_serializable : std::false_type {};

template <class T>
void write_value(Writer& w, const T& v) {
  Codec<T>::write(w, v);
}
template <class T>
T read_value(Reader& r) {
  return Codec<T>::read(r);
}

template <class T>
struct Codec<T, std::enable_if_t<(std::is_arithmetic_v<T> || std::is_enum_v<T>) && !std::is_same_v<T, bool>>> {
  static void write(Writer& w, const T& v) { w.write_pod(v); }
  static T read(Reader& r) { return r.read_pod<T>(); }
};

// One byte, 0 or 1 (any other byte is a corrupt value, never a bool with an invalid representation).
template <>
struct Codec<bool> {
  static void write(Writer& w, const bool& v) { w.write_pod<std::uint8_t>(v ? 1 : 0); }
  static bool read(Reader& r) {
    const auto b = r.read_pod<std::uint8_t>();
    if (b > 1) throw SerializationError("iogrid: corrupt value: a bool stored as " + std::to_string(int(b)));
    return b == 1;
  }
};

template <>
struct Codec<std::string> {
  static void write(Writer& w, const std::string& s) {
    w.write_pod<std::uint64_t>(s.size());
    w.write(s.data(), s.size());
  }
  static std::string read(Reader& r) {
    auto n = r.read_length(1);
    auto p = r.take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
};

template <>
struct Codec<Bytes> {
  static void write(Writer& w, const Bytes& b) {
    w.write_pod<std::uint64_t>(b.size());
    w.write(b.data(), b.size());
  }
  static Bytes read(Reader& r) {
    auto n = r.read_length(1);
    auto p = r.take(n);
    if (r.owner()) return Bytes(r.owner(), p, n);  // zero copy: shares the stored buffer
    return Bytes(p, n);
  }
};

template <class T, class A>
struct Codec<std::vector<T, A>> {
  static void write(Writer& w, const std::vector<T, A>& v) {
    w.write_pod<std::uint64_t>(v.size());
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      w.write(v.data(), v.size() * sizeof(T));
    } else {
      for (const auto& x : v) write_value<T>(w, x);
    }
  }
  static std::vector<T, A> read(Reader& r) {
    std::vector<T, A> v;
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      auto n = r.read_length(sizeof(T));
      v.resize(n);
      r.read(v.data(), n * sizeof(T));
    } else {
      auto n = r.read_length(1);
      v.reserve(n);
      for (std::uint64_t i = 0; i < n; ++i) v.push_back(read_value<T>(r));
    }
    return v;
  }
};

template <class T, std::size_t N>
struct Codec<std::array<T, N>> {
  static void write(Writer& w, const std::array<T, N>& v) {
    for (const auto& x : v) write_value<T>(w, x);
  }
  static std::array<T, N> read(Reader& r) {
    std::array<T, N> v;
    for (auto& x : v) x = read_value<T>(r);
    return v;
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static void write(Writer& w, const std::pair<A, B>& v) {
    write_value<A>(w, v.first);
    write_value<B>(w, v.second);
  }
  static std::pair<A, B> read(Reader& r) {
    A a = read_value<A>(r);
    B b = read_value<B>(r);
    return {std::move(a), std::move(b)};
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>> {
  static void write(Writer& w, const std::tuple<Ts...>& v) {
    std::apply([&](const auto&... xs) { (write_value<std::decay_t<decltype(xs)>>(w, xs), ...); }, v);
  }
  static std::tuple<Ts...> read(Reader& r) { return std::tuple<Ts...>{read_value<Ts>(r)...}; }
};

template <class T>
struct Codec<std::optional<T>> {
  static void write(Writer& w, const std::optional<T>& v) {
    w.write_pod<std::uint8_t>(v ? 1 : 0);
    if (v) write_value<T>(w, *v);
  }
  static std::optional<T> read(Reader& r) {
    if (r.read_pod<std::uint8_t>() == 0) return std::nullopt;
    return read_value<T>(r);
  }
};

template <class Map>
struct MapCodec {
  using K = typename Map::key_type;
  using V = typename Map::mapped_type;
  static void write(Writer& w, const Map& m) {
    w.write_pod<std::uint64_t>(m.size());
    for (const auto& [k, v] : m) {
      write_value<K>(w, k);
      write_value<V>(w, v);
    }
  }
  static Map read(Reader& r) {
    Map m;
    auto n = r.read_length(1);
    for (std::uint64_t i = 0; i < n; ++i) {
      K k = read_value<K>(r);
      m.emplace(std::move(k), read_value<V>(r));
    }
    return m;
  }
};
template <class K, class V, class C, class A>
struct Codec<std::map<K, V, C, A>> : MapCodec<std::map<K, V, C, A>> {};
template <class K, class V, class H, class E, class A>
struct Codec<std::unordered_map<K, V, H, E, A>> : MapCodec<std::unordered_map<K, V, H, E, A>> {};

template <class T, class C, class A>
struct Codec<std::set<T, C, A>> {
  static void write(Writer& w, const std::set<T, C, A>& s) {
    w.write_pod<std::uint64_t>(s.size());
    for (const auto& x : s) write_value<T>(w, x);
  }
  static std::set<T, C, A> read(Reader& r) {
    std::set<T, C, A> s;
    auto n = r.read_length(1);
    for (std::uint64_t i = 0; i < n; ++i) s.insert(read_value<T>(r));
    return s;
  }
};

// User structs with IOGRID_SERIALIZE(...).
template <class T>
struct Codec<T, std::enable_if_t<detail::has_fields<T>::value>> {
  static void write(Writer& w, const T& v) {
    v.iogrid_fields([&](const auto&... fs) { (write_value<std::decay_t<decltype(fs)>>(w, fs), ...); });
  }
  static T read(Reader& r) {
    static_assert(std::is_default_constructible_v<T>,
                  "iogrid: a struct with IOGRID_SERIALIZE must be default-constructible");
    T v{};
    v.iogrid_fields([&](auto&... fs) { ((fs = read_value<std::decay_t<decltype(fs)>>(r)), ...); });
    return v;
  }
};

// Unit: the value of a task returning void.
struct Unit {
  IOGRID_SERIALIZE()
};

// Serialises `v` into an exact-size buffer (one copy of the bytes); ObjectRefs inside go to `contained`.
template <class T>
core::MutableBufferPtr serialize(const T& v, std::vector<std::shared_ptr<void>>* contained = nullptr) {
  Writer m;
  write_value<T>(m, v);
  auto buf = core::make_buffer(m.size());
  Writer w(buf->data());
  w.contained = contained;
  write_value<T>(w, v);
  return buf;
}

template <class T>
T deserialize(const core::BufferPtr& buf) {
  Reader r(buf->data(), buf->size(), buf);
  T v = read_value<T>(r);
  if (r.remaining() != 0)
    throw SerializationError("iogrid: value has " + std::to_string(r.remaining()) +
                             " trailing bytes: it was stored as another type than the one asked for");
  return v;
}

}  // namespace iogrid
