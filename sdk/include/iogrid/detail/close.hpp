// Spot checks' comparison of two results of one function within a relative tolerance (TaskOptions::
// verify_tolerance): floating-point values element by element, |a - b| <= t x max(1, |a|, |b|), through vectors,
// arrays, pairs, tuples, optionals and f32 tensors; every other value must be equal. Registered with each remote
// function (FunctionInfo::close) from its result type; the runtime compares bitwise first.
#pragma once

#include <array>
#include <cmath>
#include <cstring>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "iogrid/core/buffer.hpp"
#include "iogrid/serialization.hpp"
#include "iogrid/tensor.hpp"

namespace iogrid::detail {

template <class T>
struct tolerant : std::is_floating_point<T> {};
template <class T, class A>
struct tolerant<std::vector<T, A>> : tolerant<T> {};
template <class T, std::size_t N>
struct tolerant<std::array<T, N>> : tolerant<T> {};
template <class A, class B>
struct tolerant<std::pair<A, B>> : std::bool_constant<tolerant<A>::value || tolerant<B>::value> {};
template <class... Ts>
struct tolerant<std::tuple<Ts...>> : std::bool_constant<(tolerant<Ts>::value || ...)> {};
template <class T>
struct tolerant<std::optional<T>> : tolerant<T> {};
template <>
struct tolerant<Tensor> : std::true_type {};

inline bool close_float(double a, double b, double t) {
  if (a == b) return true;
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::abs(a - b) <= t * std::max({1.0, std::abs(a), std::abs(b)});
}

template <class T, class = void>
struct equality_comparable : std::false_type {};
template <class T>
struct equality_comparable<T, std::void_t<decltype(std::declval<const T&>() == std::declval<const T&>())>> : std::true_type {};

// Declared first, so each finds the others whatever the nesting.
inline bool close_values(float a, float b, double t);
inline bool close_values(double a, double b, double t);
inline bool close_values(const Tensor& a, const Tensor& b, double t);
template <class T, class A>
bool close_values(const std::vector<T, A>& a, const std::vector<T, A>& b, double t);
template <class T, std::size_t N>
bool close_values(const std::array<T, N>& a, const std::array<T, N>& b, double t);
template <class A, class B>
bool close_values(const std::pair<A, B>& a, const std::pair<A, B>& b, double t);
template <class... Ts>
bool close_values(const std::tuple<Ts...>& a, const std::tuple<Ts...>& b, double t);
template <class T>
bool close_values(const std::optional<T>& a, const std::optional<T>& b, double t);
template <class T, std::enable_if_t<!tolerant<T>::value, int> = 0>
bool close_values(const T& a, const T& b, double) {
  if constexpr (equality_comparable<T>::value) return a == b;
  else {
    const auto x = serialize<T>(a), y = serialize<T>(b);
    return x->size() == y->size() && std::memcmp(x->data(), y->data(), x->size()) == 0;
  }
}

template <class Seq>
bool close_seq(const Seq& a, const Seq& b, double t) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!close_values(a[i], b[i], t)) return false;
  return true;
}

inline bool close_values(float a, float b, double t) { return close_float(a, b, t); }
inline bool close_values(double a, double b, double t) { return close_float(a, b, t); }
inline bool close_values(const Tensor& a, const Tensor& b, double t) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  if (a.dtype() == DType::f32) return close_seq(a.to_vector<float>(), b.to_vector<float>(), t);
  const auto ha = a.to(Device::cpu()), hb = b.to(Device::cpu());
  return ha.nbytes() == hb.nbytes() && std::memcmp(ha.raw(), hb.raw(), ha.nbytes()) == 0;
}
template <class T, class A>
bool close_values(const std::vector<T, A>& a, const std::vector<T, A>& b, double t) { return close_seq(a, b, t); }
template <class T, std::size_t N>
bool close_values(const std::array<T, N>& a, const std::array<T, N>& b, double t) { return close_seq(a, b, t); }
template <class A, class B>
bool close_values(const std::pair<A, B>& a, const std::pair<A, B>& b, double t) {
  return close_values(a.first, b.first, t) && close_values(a.second, b.second, t);
}
template <class... Ts>
bool close_values(const std::tuple<Ts...>& a, const std::tuple<Ts...>& b, double t) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (close_values(std::get<I>(a), std::get<I>(b), t) && ...);
  }(std::index_sequence_for<Ts...>{});
}
template <class T>
bool close_values(const std::optional<T>& a, const std::optional<T>& b, double t) {
  if (a.has_value() != b.has_value()) return false;
  return !a || close_values(*a, *b, t);
}

// FunctionInfo::close for a function returning R.
template <class R>
bool close_results(const core::BufferPtr& a, const core::BufferPtr& b, double tolerance) {
  if (a->size() == b->size() && std::memcmp(a->data(), b->data(), a->size()) == 0) return true;
  if constexpr (std::is_void_v<R> || !tolerant<std::decay_t<R>>::value) {
    return false;
  } else {
    try {
      return close_values(deserialize<std::decay_t<R>>(a), deserialize<std::decay_t<R>>(b), tolerance);
    } catch (const std::exception&) {
      return false;  // a result that does not even read back is not close to anything
    }
  }
}

}  // namespace iogrid::detail
