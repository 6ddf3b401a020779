// Remote functions: register with IOGRID_REMOTE(fn), call with iogrid::task(fn).remote(args...).
//
//     int square(int x) { return x * x; }
//     IOGRID_REMOTE(square);
//     auto r = iogrid::task(square).remote(7);             // ObjectRef<int>
//     auto s = iogrid::task(add).remote(r, 1);              // runs when r exists; no worker waits for it
//     int v = iogrid::get(s);
#pragma once

#include <memory>
#include <utility>

#include "iogrid/detail/invoke.hpp"
#include "iogrid/detail/submit.hpp"
#include "iogrid/object_ref.hpp"
#include "iogrid/options.hpp"

namespace iogrid {

template <class F>
class TaskCaller;

template <class R, class... P>
class TaskCaller<R (*)(P...)> {
 public:
  using result_type = detail::result_t<R>;

  explicit TaskCaller(R (*f)(P...)) : fn_(&detail::lookup_remote(f, "function")) {}

  TaskCaller& options(TaskOptions o) {
    opts_ = std::move(o);
    return *this;
  }

  template <class... A>
  ObjectRef<result_type> remote(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "iogrid: wrong number of arguments for this remote function");
    (detail::check_arg<P, A>(), ...);
    auto& rt = core::current();
    auto spec = std::make_unique<core::TaskSpec>();
    spec->kind = core::TaskKind::normal;
    spec->fn = fn_;
    spec->name = opts_.name.empty() ? fn_->name : opts_.name;
    detail::ArgEncoder enc(*spec);
    (enc.template add<P>(std::forward<A>(a)), ...);
    auto result = rt.new_entry();
    spec->result = result;
    detail::submit_task(rt, std::move(spec), opts_);
    return ObjectRef<result_type>(std::move(result));
  }

 private:
  const core::FunctionInfo* fn_;
  TaskOptions opts_;
};

template <class R, class... P>
TaskCaller<R (*)(P...)> task(R (*f)(P...)) {
  return TaskCaller<R (*)(P...)>(f);
}

}  // namespace iogrid
