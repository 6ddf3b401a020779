// Stateful actors: an instance of a user class living on one worker; method calls run there one at a
// time, and calls from one caller run in the order they were made.
//
//     struct Counter { int n = 0; int add(int d) { return n += d; } };
//     IOGRID_REMOTE(&Counter::add);
//     auto c = iogrid::actor<Counter>().options({.max_restarts = 1}).remote();
//     auto r = c.call(&Counter::add).remote(5);     // ObjectRef<int>
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <typeinfo>
#if defined(__GNUG__)
#include <cstdlib>
#include <cxxabi.h>
#endif
#include <utility>

#include "iogrid/detail/invoke.hpp"
#include "iogrid/detail/submit.hpp"
#include "iogrid/object_ref.hpp"
#include "iogrid/options.hpp"

namespace iogrid {

namespace detail {

template <class T, class... A, std::size_t... I>
void* construct_impl(ArgReader in, std::index_sequence<I...>) {
  std::tuple<param_t<A>...> args{in.template next<param_t<A>>()...};
  return new T(std::move(std::get<I>(args))...);
}
template <class T, class... A>
void* construct(const core::TaskSpec& spec) {
  return construct_impl<T, A...>(ArgReader(spec), std::index_sequence_for<A...>{});
}
template <class T>
void destroy(void* p) {
  delete static_cast<T*>(p);
}

// One registration per (class, constructor argument types), made at start-up in every process.
template <class T, class... A>
struct ConstructorRegistration {
  static const core::FunctionInfo& info() {
    static const core::FunctionInfo& fi = [] {
      core::FunctionInfo f;
      f.name = std::string("ctor:") + typeid(T).name() + ":" + typeid(std::tuple<A...>).name();
      f.construct = &construct<T, A...>;
      f.destroy = &destroy<T>;
      return std::cref(core::register_function(std::move(f)));
    }();
    return fi;
  }
  static inline const core::FunctionInfo& registered = info();
};

}  // namespace detail

template <class T>
class ActorHandle;

template <class T, class M>
class ActorMethod;

template <class T, class R, class C, class... P>
class ActorMethodBase {
 public:
  using result_type = detail::result_t<R>;
  ActorMethodBase(std::shared_ptr<void> actor, const core::FunctionInfo* fi) : actor_(std::move(actor)), fn_(fi) {}

  template <class... A>
  ObjectRef<result_type> remote(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "iogrid: wrong number of arguments for this actor method");
    (detail::check_arg<P, A>(), ...);
    auto& rt = core::current();
    auto spec = std::make_unique<core::TaskSpec>();
    spec->kind = core::TaskKind::actor_call;
    spec->fn = fn_;
    spec->name = fn_->name;
    detail::ArgEncoder enc(*spec);
    (enc.template add<P>(std::forward<A>(a)), ...);
    auto result = rt.new_entry();
    spec->result = result;
    rt.submit_actor_call(actor_, std::move(spec));
    return ObjectRef<result_type>(std::move(result));
  }

 private:
  std::shared_ptr<void> actor_;
  const core::FunctionInfo* fn_;
};

template <class T, class R, class C, class... P>
class ActorMethod<T, R (C::*)(P...)> : public ActorMethodBase<T, R, C, P...> {
  using ActorMethodBase<T, R, C, P...>::ActorMethodBase;
};
template <class T, class R, class C, class... P>
class ActorMethod<T, R (C::*)(P...) const> : public ActorMethodBase<T, R, C, P...> {
  using ActorMethodBase<T, R, C, P...>::ActorMethodBase;
};

template <class T>
class ActorHandle {
 public:
  ActorHandle() = default;
  explicit ActorHandle(std::shared_ptr<void> rec) : rec_(std::move(rec)) {}

  template <class M>
  ActorMethod<T, M> call(M method) const {
    static_assert(std::is_member_function_pointer_v<M>, "iogrid: call() takes a method pointer (&T::method)");
    if (!rec_) throw Error("iogrid: call on an empty ActorHandle");
    return ActorMethod<T, M>(rec_, &detail::lookup_remote(method, "actor method"));
  }

  // Kills the actor. With no_restart = false it is restarted if it has restarts left.
  void kill(bool no_restart = true) const {
    if (rec_) core::current().kill_actor(rec_, no_restart);
  }
  bool valid() const { return static_cast<bool>(rec_); }

 private:
  std::shared_ptr<void> rec_;
};

namespace detail {
// The class name a person reads ("Counter", "models::Mlp"), for errors and the dashboard.
inline std::string readable_type_name(const std::type_info& t) {
  std::string n = t.name();
#if defined(__GNUG__)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status), std::free);
  if (status == 0 && d) n = d.get();
  const std::string anon = "(anonymous namespace)::";
  for (auto p = n.find(anon); p != std::string::npos; p = n.find(anon)) n.erase(p, anon.size());
#endif
  return n;
}
}  // namespace detail

template <class T, class... A>
class ActorCreator {
 public:
  explicit ActorCreator(A... a) : args_(std::move(a)...) {}
  ActorCreator& options(ActorOptions o) {
    opts_ = std::move(o);
    return *this;
  }
  ActorHandle<T> remote() {
    auto& rt = core::current();
    auto spec = std::make_unique<core::TaskSpec>();
    spec->kind = core::TaskKind::actor_create;
    spec->fn = &detail::ConstructorRegistration<T, A...>::registered;
    spec->name = opts_.name.empty() ? detail::readable_type_name(typeid(T)) : opts_.name;
    detail::ArgEncoder enc(*spec);
    std::apply([&](auto&... a) { (enc.template add<std::decay_t<decltype(a)>>(a), ...); }, args_);
    spec->result = rt.new_entry();
    return ActorHandle<T>(detail::create_actor(rt, std::move(spec), opts_));
  }

 private:
  std::tuple<A...> args_;
  ActorOptions opts_;
};

// Describes an actor of class T built from `args` (copied); .remote() creates it.
template <class T, class... A>
ActorCreator<T, std::decay_t<A>...> actor(A&&... args) {
  static_assert(std::is_constructible_v<T, std::decay_t<A>...>,
                "iogrid: the actor class has no constructor taking these argument types");
  return ActorCreator<T, std::decay_t<A>...>(std::forward<A>(args)...);
}

}  // namespace iogrid
