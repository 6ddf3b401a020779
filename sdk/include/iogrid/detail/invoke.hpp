// Turning registered C++ functions into type-erased invokers, and task arguments into bytes.
// The compiler checks every argument against the function's parameter types at the call site.
#pragma once

#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "iogrid/core/core.hpp"
#include "iogrid/core/function_registry.hpp"
#include "iogrid/core/task_spec.hpp"
#include "iogrid/detail/close.hpp"
#include "iogrid/errors.hpp"
#include "iogrid/object_ref.hpp"
#include "iogrid/serialization.hpp"

namespace iogrid::detail {

using core::FunctionInfo;
using core::MutableBufferPtr;
using core::TaskSpec;

// Reads a task's arguments back in parameter order (what ArgEncoder below wrote).
class ArgReader {
 public:
  explicit ArgReader(const TaskSpec& spec)
      : spec_(spec), r_(reinterpret_cast<const std::uint8_t*>(spec.args.data()), spec.args.size()) {}
  template <class T>
  T next() {
    auto tag = r_.read_pod<std::uint8_t>();
    if (tag == 0) return read_value<T>(r_);
    auto idx = r_.read_pod<std::uint32_t>();
    if (idx >= spec_.deps.size()) throw SerializationError("iogrid: corrupt task arguments");
    return deserialize<T>(spec_.deps[idx]->bytes());
  }

 private:
  const TaskSpec& spec_;
  Reader r_;
};

template <class T>
using param_t = std::decay_t<T>;

template <class R>
using result_t = std::conditional_t<std::is_void_v<R>, void, std::decay_t<R>>;

template <class R, class Fn>
MutableBufferPtr run_and_serialize(Fn&& fn, std::vector<std::shared_ptr<void>>* contained) {
  if constexpr (std::is_void_v<R>) {
    fn();
    return serialize(Unit{});
  } else {
    return serialize<std::decay_t<R>>(fn(), contained);
  }
}

template <class R, class... P, std::size_t... I>
MutableBufferPtr call_free_impl(R (*f)(P...), ArgReader in, std::vector<std::shared_ptr<void>>* contained,
                                std::index_sequence<I...>) {
  std::tuple<param_t<P>...> args{in.template next<param_t<P>>()...};
  return run_and_serialize<R>([&]() -> decltype(auto) { return f(static_cast<P&&>(std::get<I>(args))...); },
                              contained);
}

template <class R, class... P>
MutableBufferPtr call_free(const FunctionInfo& fi, void*, const TaskSpec& spec,
                           std::vector<std::shared_ptr<void>>* contained) {
  return call_free_impl(core::pointer_from<R (*)(P...)>(fi), ArgReader(spec), contained, std::index_sequence_for<P...>{});
}

template <class T, class M, class R, class... P, std::size_t... I>
MutableBufferPtr call_method_impl(M m, T* self, ArgReader in, std::vector<std::shared_ptr<void>>* contained,
                                  std::index_sequence<I...>) {
  std::tuple<param_t<P>...> args{in.template next<param_t<P>>()...};
  return run_and_serialize<R>(
      [&]() -> decltype(auto) { return (self->*m)(static_cast<P&&>(std::get<I>(args))...); }, contained);
}

template <class T, class M, class R, class... P>
MutableBufferPtr call_method(const FunctionInfo& fi, void* self, const TaskSpec& spec,
                             std::vector<std::shared_ptr<void>>* contained) {
  return call_method_impl<T, M, R, P...>(core::pointer_from<M>(fi), static_cast<T*>(self), ArgReader(spec), contained,
                                         std::index_sequence_for<P...>{});
}

template <class R, class... P>
const FunctionInfo& make_remote(const char* name, R (*f)(P...)) {
  FunctionInfo fi;
  fi.name = name;
  fi.pointer = core::pointer_bytes(f);
  fi.call = &call_free<R, P...>;
  fi.close = &close_results<R>;
  return core::register_function(std::move(fi));
}
template <class T, class R, class... P>
const FunctionInfo& make_remote(const char* name, R (T::*m)(P...)) {
  FunctionInfo fi;
  fi.name = name;
  fi.pointer = core::pointer_bytes(m);
  fi.call = &call_method<T, R (T::*)(P...), R, P...>;
  return core::register_function(std::move(fi));
}
template <class T, class R, class... P>
const FunctionInfo& make_remote(const char* name, R (T::*m)(P...) const) {
  FunctionInfo fi;
  fi.name = name;
  fi.pointer = core::pointer_bytes(m);
  fi.call = &call_method<T, R (T::*)(P...) const, R, P...>;
  return core::register_function(std::move(fi));
}

template <class P>
const FunctionInfo& lookup_remote(P p, const char* what) {
  auto bytes = core::pointer_bytes(p);
  if (auto* fi = core::find_function_by_pointer(bytes.data(), bytes.size())) return *fi;
  throw Error(std::string("iogrid: this ") + what +
              " is not registered: add IOGRID_REMOTE(...) for it at namespace scope (e.g. IOGRID_REMOTE(my_fn) "
              "or IOGRID_REMOTE(&MyActor::my_method))");
}

// Checks at compile time that argument A can be passed where parameter P is expected.
template <class P, class A>
constexpr void check_arg() {
  using D = std::decay_t<A>;
  using PD = param_t<P>;
  if constexpr (is_object_ref<D>::value && !is_object_ref<PD>::value) {
    using U = typename D::value_type;
    static_assert(std::is_convertible_v<U, PD> && std::is_same_v<std::decay_t<U>, PD>,
                  "iogrid: an ObjectRef<U> argument must have the value type of the parameter it fills");
  } else {
    static_assert(std::is_convertible_v<A&&, PD>,
                  "iogrid: argument type does not match the remote function's parameter type");
    (void)sizeof(Codec<PD>);
  }
}

// Encodes task arguments into a spec: inline values, or dependencies for ObjectRefs and large values.
class ArgEncoder {
 public:
  explicit ArgEncoder(TaskSpec& spec) : spec_(spec) {}

  template <class P, class A>
  void add(A&& a) {
    using D = std::decay_t<A>;
    using PD = param_t<P>;
    if constexpr (is_object_ref<D>::value && !is_object_ref<PD>::value) {
      add_dep(a.handle());
    } else if constexpr (std::is_same_v<D, PD>) {
      add_value<PD>(a);
    } else {
      add_value<PD>(PD(std::forward<A>(a)));
    }
  }

 private:
  void add_dep(const core::RefHandle& h) {
    if (!h) throw Error("iogrid: an empty ObjectRef was passed as a task argument");
    auto idx = static_cast<std::uint32_t>(spec_.deps.size());
    spec_.deps.push_back(h);
    auto old = spec_.args.size();
    spec_.args.resize(old + 1 + sizeof(idx));
    spec_.args[old] = 1;
    std::memcpy(spec_.args.data() + old + 1, &idx, sizeof(idx));
  }
  template <class PD>
  void add_value(const PD& v) {
    Writer m;
    write_value<PD>(m, v);
    if (m.size() > core::kMaxInlineArgBytes) {
      std::vector<std::shared_ptr<void>> contained;
      auto buf = serialize<PD>(v, &contained);
      add_dep(core::current().put(std::move(buf), std::move(contained)));
      return;
    }
    auto old = spec_.args.size();
    spec_.args.resize(old + 1 + m.size());
    spec_.args[old] = 0;
    Writer w(reinterpret_cast<std::uint8_t*>(spec_.args.data()) + old + 1);
    w.contained = &spec_.contained;
    write_value<PD>(w, v);
  }
  TaskSpec& spec_;
};

}  // namespace iogrid::detail

#define IOGRID_CAT_I(a, b) a##b
#define IOGRID_CAT(a, b) IOGRID_CAT_I(a, b)

// Registers a function or an actor method so tasks and actor calls can run it, in this process and in workers:
//     IOGRID_REMOTE(square);   IOGRID_REMOTE(&Counter::add);
#define IOGRID_REMOTE(...)                                                                    \
  [[maybe_unused]] static const ::iogrid::core::FunctionInfo& IOGRID_CAT(iogrid_remote_, __COUNTER__) = \
      ::iogrid::detail::make_remote(#__VA_ARGS__, __VA_ARGS__)
